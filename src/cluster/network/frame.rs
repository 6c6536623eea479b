//! Frames on the cluster bus: a `u32` payload length, a `u32` CRC-32 of the payload (both
//! little-endian), then the payload. A length above the reader's maximum (at most
//! [`MAX_FRAME_BYTES`]) is refused before anything is allocated for it.

use std::io::IoSlice;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::error::TransportError;

/// The largest payload a frame may carry: 64 MiB. A snapshot travels in chunks far below it.
pub const MAX_FRAME_BYTES: usize = 64 << 20;

const HEADER_BYTES: usize = 8;

/// Reads one frame's payload, of at most `max` bytes, taking at most `limit` for the whole frame.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
    limit: Duration,
) -> Result<Vec<u8>, TransportError> {
    timeout(limit, read_untimed(reader, max))
        .await
        .map_err(|_| TransportError::TimedOut { after: limit })?
}

async fn read_untimed<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Vec<u8>, TransportError> {
    let mut header = [0; HEADER_BYTES];
    reader.read_exact(&mut header).await?;
    let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
    let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
    let crc = u32::from_le_bytes([c0, c1, c2, c3]);
    if len > max.min(MAX_FRAME_BYTES) {
        return Err(TransportError::FrameTooLarge { len, max });
    }
    let mut payload = vec![0; len];
    reader.read_exact(&mut payload).await?;
    if crc32fast::hash(&payload) != crc {
        return Err(TransportError::BadChecksum);
    }
    Ok(payload)
}

/// Writes one frame carrying `payload`, taking at most `limit`.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    payload: &[u8],
    limit: Duration,
) -> Result<(), TransportError> {
    timeout(limit, write_untimed(writer, payload))
        .await
        .map_err(|_| TransportError::TimedOut { after: limit })?
}

async fn write_untimed<W: AsyncWrite + Unpin>(
    writer: &mut W,
    payload: &[u8],
) -> Result<(), TransportError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&len| len as usize <= MAX_FRAME_BYTES)
        .ok_or(TransportError::FrameTooLarge {
            len: payload.len(),
            max: MAX_FRAME_BYTES,
        })?;
    let mut header = [0; HEADER_BYTES];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    write_all_vectored(writer, &mut [IoSlice::new(&header), IoSlice::new(payload)]).await?;
    writer.flush().await?;
    Ok(())
}

/// Writes every byte of `parts` with as few system calls as the socket allows: one, usually,
/// where writing the header and the payload apart cost two, and sent the header in a segment
/// of its own that woke the peer for nothing.
async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut parts: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    while !parts.is_empty() {
        let written = writer.write_vectored(parts).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut parts, written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_frame_round_trips_and_damage_is_refused() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, b"payload", LIMIT).await.unwrap();
        assert_eq!(bytes.len(), HEADER_BYTES + 7);
        assert_eq!(
            read_frame(&mut &bytes[..], MAX_FRAME_BYTES, LIMIT)
                .await
                .unwrap(),
            b"payload"
        );

        let mut flipped = bytes.clone();
        flipped[HEADER_BYTES] ^= 1;
        let error = read_frame(&mut &flipped[..], MAX_FRAME_BYTES, LIMIT)
            .await
            .unwrap_err();
        assert!(matches!(error, TransportError::BadChecksum));

        let cut = &bytes[..bytes.len() - 1];
        assert!(matches!(
            read_frame(&mut &cut[..], MAX_FRAME_BYTES, LIMIT)
                .await
                .unwrap_err(),
            TransportError::Io(_)
        ));
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_reading_the_payload() {
        let mut header = Vec::new();
        header.extend_from_slice(&u32::MAX.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        let error = read_frame(&mut &header[..], MAX_FRAME_BYTES, LIMIT).await;
        assert!(matches!(error, Err(TransportError::FrameTooLarge { .. })));

        let mut small = Vec::new();
        write_frame(&mut small, b"payload", LIMIT).await.unwrap();
        let error = read_frame(&mut &small[..], 6, LIMIT).await;
        assert!(matches!(
            error,
            Err(TransportError::FrameTooLarge { len: 7, max: 6 })
        ));
    }
}

//! The HTTP side of the endpoint: HTTP/1.1 with hyper on the server's runtime; `GET /metrics`
//! answers the scrape, anything else a short error.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use super::{registry, scrape};
use crate::server::state::Server;

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long to pause after `accept` fails, so that a full descriptor table is not a busy loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Serves scrapes on `listener` until the task is dropped.
pub async fn serve_metrics(server: Arc<Server>, listener: TcpListener) {
    let registry = Arc::new(registry(server));
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                tokio::spawn(serve_connection(Arc::clone(&registry), socket));
            }
            Err(error) => {
                tracing::warn!(%error, "the metrics endpoint could not accept a connection");
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

async fn serve_connection(registry: Arc<Registry>, socket: tokio::net::TcpStream) {
    let service = service_fn(move |request| respond(Arc::clone(&registry), request));
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(socket), service)
        .await
    {
        tracing::debug!(%error, "metrics connection ended with an error");
    }
}

async fn respond(
    registry: Arc<Registry>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/metrics" {
        return Ok(plain(
            StatusCode::NOT_FOUND,
            "Not found: scrape /metrics.\n",
        ));
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Ok(plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only GET reads /metrics.\n",
        ));
    }
    // Reading every stream's figures takes locks: off the runtime's worker threads.
    let scraped = tokio::task::spawn_blocking(move || scrape(&registry)).await;
    Ok(match scraped {
        Ok(Ok(text)) => {
            let mut response = plain(StatusCode::OK, "");
            *response.body_mut() = Full::new(Bytes::from(text));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
            response
        }
        Ok(Err(_)) | Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The metrics could not be encoded; see the server's log.\n",
        ),
    })
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

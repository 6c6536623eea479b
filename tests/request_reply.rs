//! Request/response over streams through the library: a `Requester` sends requests with
//! `reply-to` and `correlation-id` headers, consumers answer with `Delivery::reply`, replies find
//! their requester, duplicates and late replies are dropped, timeouts are typed, and abandoned
//! reply streams expire.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use weir::group::GroupPolicy;
use weir::{
    CORRELATION_ID, Durability, Entry, Group, GroupStart, ManualClock, Message, REPLY_TO,
    RequestError, SharedClock, Store, StoreError, StoreOptions, Stream,
};

/// Long enough never to expire on a loaded machine: these waits are expected to succeed.
const PATIENT: Duration = Duration::from_secs(60);

fn open_with_clock(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Store {
    let options = StoreOptions {
        durability: Durability::Always,
        clock: Arc::clone(clock) as SharedClock,
        ..StoreOptions::default()
    };
    Store::open_with(dir, options).unwrap()
}

fn service(store: &Store, policy: GroupPolicy) -> (Arc<Stream>, Group) {
    let requests = store.stream(b"requests").unwrap();
    let group = requests
        .create_group(b"service", GroupStart::Beginning, policy)
        .unwrap();
    (requests, group)
}

fn header(entry: &Entry, name: &str) -> Option<Vec<u8>> {
    entry
        .headers()
        .find(|(key, _)| *key == name.as_bytes())
        .map(|(_, value)| value.to_vec())
}

/// Answers requests with `echo:` and their body until `done` is set.
fn respond_until(group: &Group, consumer: &str, done: &AtomicBool) {
    while !done.load(Ordering::SeqCst) {
        let batch = group
            .read_blocking(consumer.as_bytes(), 8, Duration::from_millis(50))
            .unwrap();
        for request in batch {
            let answer = [b"echo:".as_slice(), request.body()].concat();
            assert!(request.reply(answer).unwrap());
        }
    }
}

#[test]
fn concurrent_requesters_get_their_own_replies() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (requests, group) = service(&store, GroupPolicy::default());
    let shared = store.requester().unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for r in 0..3 {
            let (group, done) = (&group, &done);
            scope.spawn(move || respond_until(group, &format!("responder-{r}"), done));
        }
        let mut clients = Vec::new();
        for t in 0..6 {
            let (store, requests, shared) = (&store, &requests, &shared);
            clients.push(scope.spawn(move || {
                // Half the threads share one requester, the others have one each.
                let own = (t % 2 == 0).then(|| store.requester().unwrap());
                let requester = own.as_ref().unwrap_or(shared);
                for i in 0..40 {
                    let body = format!("t{t}-r{i}");
                    let reply = requester
                        .request_blocking(requests, Message::new(body.clone()), PATIENT)
                        .unwrap();
                    assert_eq!(reply.body(), format!("echo:{body}").as_bytes());
                }
            }));
        }
        for client in clients {
            client.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
    });
    assert_eq!(requests.len(), 240);
    let backlog = group.backlog().unwrap();
    assert_eq!((backlog.lag, backlog.pending), (Some(0), 0));
}

#[test]
fn async_requests_wait_without_blocking_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (requests, group) = service(&store, GroupPolicy::default());
    let requester = store.requester().unwrap();
    let done = AtomicBool::new(false);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    std::thread::scope(|scope| {
        let (group_ref, done_ref) = (&group, &done);
        scope.spawn(move || respond_until(group_ref, "responder", done_ref));
        // The future can move to another thread (tokio::spawn needs it).
        assert_send(&requester.request(&requests, Message::new("unsent"), PATIENT));
        // Fifty requests in flight at once on a single thread.
        let replies = runtime.block_on(async {
            let pending = (0..50).map(|i| {
                let message = Message::new(format!("q{i}"));
                requester.request(&requests, message, PATIENT)
            });
            futures_join_all(pending).await
        });
        for (i, reply) in replies.into_iter().enumerate() {
            assert_eq!(reply.unwrap().body(), format!("echo:q{i}").as_bytes());
        }
        done.store(true, Ordering::SeqCst);
    });
}

fn assert_send<T: Send>(_: &T) {}

/// Awaits every future, concurrently, keeping their order (tokio's `JoinSet` needs `'static`).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[test]
fn a_responder_failing_between_reply_and_ack_gives_a_duplicate_the_requester_ignores() {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_clock(dir.path(), &clock);
    let policy = GroupPolicy {
        ack_wait_ms: Some(1_000),
        ..GroupPolicy::default()
    };
    let (requests, group) = service(&store, policy);
    let requester = store.requester().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The request is sent, and the requester waits for its reply...
    let mut waiting = Box::pin(requester.request(&requests, Message::new("first"), PATIENT));
    runtime.block_on(async {
        while requests.is_empty() {
            tokio::select! {
                biased;
                _ = &mut waiting => panic!("a reply before any responder ran"),
                () = tokio::task::yield_now() => {}
            }
        }
    });
    // ...while the first responder appends its reply exactly as `reply` does, then fails
    // before acknowledging.
    let request = group.read(b"a", 1).unwrap().remove(0);
    let reply_to = header(request.entry(), REPLY_TO).unwrap();
    let correlation = header(request.entry(), CORRELATION_ID).unwrap();
    let replies = store.get(&reply_to).expect("the requester's reply stream");
    replies
        .append(Message::new("answer-1").header(CORRELATION_ID, correlation.clone()))
        .unwrap();
    drop(request);
    // The request is delivered again once its ack deadline passes, and answered again.
    clock.advance_ms(1_000);
    let again = group.read(b"b", 1).unwrap().remove(0);
    assert_eq!(again.deliveries, 2);
    assert!(again.reply("answer-2").unwrap());
    assert_eq!(group.backlog().unwrap().pending, 0);
    // The requester finds both replies at once and keeps the first.
    let reply = runtime.block_on(waiting).unwrap();
    assert_eq!(reply.body(), b"answer-1");
    // Both replies are in the stream; the requester kept only the first, and its next request
    // gets its own reply, not the duplicate.
    let replies = requester.reply_stream();
    let all = replies.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, 10);
    let correlations: Vec<_> = all
        .unwrap()
        .iter()
        .map(|entry| header(entry, CORRELATION_ID).unwrap())
        .collect();
    assert_eq!(correlations.len(), 2);
    assert_eq!(correlations[0], correlations[1]);
    std::thread::scope(|scope| {
        let waiting =
            scope.spawn(|| requester.request_blocking(&requests, Message::new("second"), PATIENT));
        let request = group.read_blocking(b"b", 1, PATIENT).unwrap().remove(0);
        assert_eq!(request.body(), b"second");
        request.reply("answer-3").unwrap();
        assert_eq!(waiting.join().unwrap().unwrap().body(), b"answer-3");
    });
}

#[test]
fn timeouts_are_typed_and_late_replies_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (requests, group) = service(&store, GroupPolicy::default());
    let requester = store.requester().unwrap();

    let error = requester
        .request_blocking(&requests, Message::new("slow"), Duration::from_millis(20))
        .unwrap_err();
    let RequestError::Timeout { correlation_id, .. } = &error else {
        panic!("expected a timeout, got {error}");
    };
    assert!(error.to_string().contains("no reply to request"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let async_error = runtime
        .block_on(requester.request(&requests, Message::new("slower"), Duration::from_millis(20)))
        .unwrap_err();
    assert!(matches!(async_error, RequestError::Timeout { .. }));

    // The late replies go through without error and are dropped by the requester.
    let late = group.read(b"r", 10).unwrap();
    assert_eq!(late.len(), 2);
    assert_eq!(
        header(late[0].entry(), CORRELATION_ID).unwrap(),
        correlation_id.as_bytes()
    );
    for request in &late {
        assert!(request.reply("too late").unwrap());
    }
    std::thread::scope(|scope| {
        let waiting =
            scope.spawn(|| requester.request_blocking(&requests, Message::new("on time"), PATIENT));
        let request = group.read_blocking(b"r", 1, PATIENT).unwrap().remove(0);
        request.reply("answer").unwrap();
        assert_eq!(waiting.join().unwrap().unwrap().body(), b"answer");
    });
}

#[test]
fn replying_to_an_entry_that_is_not_a_request_is_refused_and_leaves_it_pending() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (requests, group) = service(&store, GroupPolicy::default());
    requests
        .append(Message::new("no reply-to").header(CORRELATION_ID, "1"))
        .unwrap();
    let delivery = group.read(b"r", 1).unwrap().remove(0);
    let error = delivery.reply("x").unwrap_err();
    assert!(matches!(
        error,
        StoreError::NotARequest {
            header: "reply-to",
            ..
        }
    ));
    assert!(error.to_string().contains("no reply-to header"));
    assert_eq!(group.backlog().unwrap().pending, 1);
}

#[test]
fn replies_create_the_reply_stream_on_demand_as_a_reply_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (requests, group) = service(&store, GroupPolicy::default());
    // A request written by hand, as a client of the server would.
    requests
        .append(
            Message::new("ping")
                .header(REPLY_TO, "client-7")
                .header(CORRELATION_ID, "abc"),
        )
        .unwrap();
    assert!(store.get(b"client-7").is_none());
    group.read(b"r", 1).unwrap()[0].reply("pong").unwrap();
    let replies = store.get(b"client-7").expect("created by the reply");
    let reply = replies.read(0).unwrap().unwrap();
    assert_eq!(reply.body(), b"pong");
    assert_eq!(header(&reply, CORRELATION_ID).unwrap(), b"abc");
    assert_eq!(
        (replies.config(), replies.log().meta().retention),
        weir::stream::reply_stream_config()
    );
}

#[test]
fn abandoned_reply_streams_expire_and_held_ones_do_not() {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let dir = tempfile::tempdir().unwrap();
    let store = open_with_clock(dir.path(), &clock);
    let ttl_ms = u64::try_from(weir::stream::REPLY_STREAM_TTL.as_millis()).unwrap();
    let kept = store.requester().unwrap();
    let abandoned = store.requester().unwrap();
    let abandoned_name = abandoned.reply_to().to_vec();
    assert_ne!(kept.reply_to(), abandoned_name.as_slice());
    drop(abandoned);

    clock.advance_ms(ttl_ms - 1);
    assert!(store.expire_idle_streams().unwrap().is_empty());
    assert!(store.get(&abandoned_name).is_some());
    clock.advance_ms(1);
    // The store's own maintenance may have expired it first.
    let expired = store.expire_idle_streams().unwrap();
    assert!(expired.is_empty() || expired == [abandoned_name.clone()]);
    assert!(store.get(&abandoned_name).is_none());
    assert!(store.get(kept.reply_to()).is_some());

    // Gone for good: the next open does not bring it back.
    let kept_name = kept.reply_to().to_vec();
    drop(kept);
    store.close().unwrap();
    let store = open_with_clock(dir.path(), &clock);
    assert_eq!(store.stream_names(), [kept_name]);
    // Idle time restarts at open, so a restart never expires a stream at once.
    assert!(store.expire_idle_streams().unwrap().is_empty());
    clock.advance_ms(ttl_ms);
    store.expire_idle_streams().unwrap();
    assert!(store.stream_names().is_empty());
}

#[test]
fn requests_keep_their_own_headers_and_replies_can_carry_headers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (requests, group) = service(&store, GroupPolicy::default());
    let requester = store.requester().unwrap();
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let message = Message::new("42").header("kind", "square");
            requester.request_blocking(&requests, message, PATIENT)
        });
        let request = group.read_blocking(b"r", 1, PATIENT).unwrap().remove(0);
        let headers: HashMap<Vec<u8>, Vec<u8>> = request
            .headers()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(headers[b"kind".as_slice()], b"square");
        assert_eq!(headers[REPLY_TO.as_bytes()], requester.reply_to());
        request
            .reply_with(Message::new("1764").header("status", "ok"))
            .unwrap();
        let reply = waiting.join().unwrap().unwrap();
        assert_eq!(header(&reply, "status").unwrap(), b"ok");
        assert_eq!(reply.body(), b"1764");
    });
}

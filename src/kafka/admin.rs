//! Topic administration without an async runtime: create, delete and reconfigure topics.
//!
//! rdkafka's [`AdminClient`] returns futures, and the crate is built without tokio. The futures
//! complete from the admin client's own polling thread, so all they need is something that polls
//! them and sleeps until woken: [`block_on`], a few lines of std (the waker unparks the waiting
//! thread). Each helper creates a short-lived admin client from `--brokers` and the common `-X`
//! properties, runs one request with [`OPERATION_TIMEOUT`], and turns the per-topic result into
//! an `anyhow` error that names the topic. The load generator uses them to create its topic, and
//! the broker tests to set up topics and to make one temporarily unwritable.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::types::RDKafkaErrorCode;

use super::client::{client_config, redact_config_error, ClientLog};

/// How long the broker may take over one admin operation (and the client over its request).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a future to completion on the current thread, parking the thread while the future is
/// pending. Meant for the few futures rdkafka's admin API returns, which are woken from
/// librdkafka's side; a spurious wake-up only costs one extra poll.
pub fn block_on<F: Future>(future: F) -> F::Output {
    /// Wakes the blocked thread.
    struct Unpark(Thread);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }

    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            // An unpark that came before this park makes it return at once, so no wake-up is lost.
            Poll::Pending => thread::park(),
        }
    }
}

/// Creates `topic` with `partitions` partitions, `replication` replicas (-1: the broker's
/// default) and the given topic configs, unless it exists. Returns `Ok(true)` if it was created,
/// `Ok(false)` if it already existed (whatever its settings).
pub fn create_topic_if_missing(
    brokers: &str,
    properties: &[(String, String)],
    topic: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) -> anyhow::Result<bool> {
    let admin = admin_client(brokers, properties)?;
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for &(key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let results = block_on(admin.create_topics([&new_topic], &options()))
        .with_context(|| format!("creating topic {topic} on {brokers}"))?;
    match single(results, topic)? {
        Ok(_) => Ok(true),
        Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => Ok(false),
        Err((_, code)) => Err(anyhow!(
            "creating topic {topic} ({partitions} partitions, replication {replication}) on {brokers}: {code}"
        )),
    }
}

/// Deletes `topic`. A topic that does not exist is not an error, so cleanup can run twice.
pub fn delete_topic(
    brokers: &str,
    properties: &[(String, String)],
    topic: &str,
) -> anyhow::Result<()> {
    let admin = admin_client(brokers, properties)?;
    let results = block_on(admin.delete_topics(&[topic], &options()))
        .with_context(|| format!("deleting topic {topic} on {brokers}"))?;
    match single(results, topic)? {
        Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => Ok(()),
        Err((_, code)) => Err(anyhow!("deleting topic {topic} on {brokers}: {code}")),
    }
}

/// Sets topic configs (for example `max.message.bytes` or `min.insync.replicas`, to make a topic
/// temporarily unwritable and then writable again), keeping the topic's other dynamic configs.
///
/// Kafka's AlterConfigs request, the one rdkafka offers, replaces a topic's whole dynamic
/// configuration: anything not in the request falls back to the broker default. So the current
/// topic-level settings are read first and sent along with the new ones. (Sensitive values, which
/// the broker does not reveal, cannot be carried over; topics have none by default.)
pub fn alter_topic_config(
    brokers: &str,
    properties: &[(String, String)],
    topic: &str,
    configs: &[(&str, &str)],
) -> anyhow::Result<()> {
    let admin = admin_client(brokers, properties)?;
    let resource = ResourceSpecifier::Topic(topic);
    let described = block_on(admin.describe_configs([&resource], &options()))
        .with_context(|| format!("reading the configuration of topic {topic} on {brokers}"))?;
    let current = match described.into_iter().next() {
        Some(Ok(current)) => current,
        Some(Err(code)) => bail!("reading the configuration of topic {topic} on {brokers}: {code}"),
        None => bail!("reading the configuration of topic {topic} on {brokers}: empty response"),
    };
    let mut alter = AlterConfig::new(resource);
    for entry in &current.entries {
        if let (ConfigSource::DynamicTopic, Some(value)) = (&entry.source, &entry.value) {
            alter = alter.set(&entry.name, value);
        }
    }
    for &(key, value) in configs {
        alter = alter.set(key, value);
    }
    let results = block_on(admin.alter_configs([&alter], &options()))
        .with_context(|| format!("altering the configuration of topic {topic} on {brokers}"))?;
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(()),
        Some(Err((_, code))) => {
            bail!("altering the configuration of topic {topic} on {brokers}: {code}")
        }
        None => bail!("altering the configuration of topic {topic} on {brokers}: empty response"),
    }
}

/// The broker's default `max.message.bytes` (and every topic's, unless set): the largest
/// record batch a topic accepts.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// Each topic's effective `max.message.bytes` (its own setting or the broker default); `None`
/// for a topic that does not exist (yet) or whose configuration could not be read.
pub fn max_message_bytes(
    brokers: &str,
    properties: &[(String, String)],
    topics: &[&str],
) -> anyhow::Result<Vec<Option<usize>>> {
    let admin = admin_client(brokers, properties)?;
    let resources: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let described = block_on(admin.describe_configs(&resources, &options()))
        .with_context(|| format!("reading the topics' max.message.bytes on {brokers}"))?;
    Ok(described
        .into_iter()
        .map(|result| {
            result
                .ok()?
                .get("max.message.bytes")?
                .value
                .as_deref()?
                .parse()
                .ok()
        })
        .collect())
}

/// An admin client with the user's properties.
pub(crate) fn admin_client(
    brokers: &str,
    properties: &[(String, String)],
) -> anyhow::Result<AdminClient<ClientLog>> {
    client_config(brokers, "kafka-pipeline-admin", &[], properties)
        .create_with_context(ClientLog::new("admin client"))
        .map_err(redact_config_error)
        .with_context(|| format!("creating a Kafka admin client for {brokers}"))
}

fn options() -> AdminOptions {
    AdminOptions::new()
        .operation_timeout(Some(OPERATION_TIMEOUT))
        .request_timeout(Some(OPERATION_TIMEOUT))
}

/// The one result of a single-topic request.
fn single<T>(results: Vec<T>, topic: &str) -> anyhow::Result<T> {
    results
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the broker sent no result for topic {topic}"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn ready_future_returns_its_value() {
        assert_eq!(block_on(async { 6 * 7 }), 42);
    }

    /// Pending until another thread sets the flag and wakes the stored waker.
    struct Flag {
        done: AtomicBool,
        waker: Mutex<Option<Waker>>,
    }

    struct WaitFor(Arc<Flag>);

    impl Future for WaitFor {
        type Output = &'static str;
        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
            // Register before checking, so a set between the two cannot be missed.
            *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.0.done.load(Ordering::SeqCst) {
                Poll::Ready("woken")
            } else {
                Poll::Pending
            }
        }
    }

    #[test]
    fn future_woken_from_another_thread_completes() {
        for _ in 0..100 {
            let flag = Arc::new(Flag {
                done: AtomicBool::new(false),
                waker: Mutex::new(None),
            });
            let setter = {
                let flag = flag.clone();
                thread::spawn(move || {
                    thread::sleep(Duration::from_micros(50));
                    flag.done.store(true, Ordering::SeqCst);
                    if let Some(w) = flag.waker.lock().unwrap().take() {
                        w.wake();
                    }
                })
            };
            assert_eq!(block_on(WaitFor(flag)), "woken");
            setter.join().unwrap();
        }
    }

    #[test]
    fn future_that_wakes_itself_is_polled_again() {
        let mut polls = 0;
        let future = std::future::poll_fn(|cx| {
            polls += 1;
            if polls < 5 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(polls)
            }
        });
        assert_eq!(block_on(future), 5);
    }

    #[test]
    fn async_blocks_compose() {
        let inner = async { 1 };
        let outer = async { inner.await + 1 };
        assert_eq!(block_on(outer), 2);
    }
}

//! Kafka in tests: the shared broker the scripts start (`TEST_KAFKA_BROKERS`, default
//! `127.0.0.1:9092`), a private broker a test may pause, fresh topic prefixes, and a plain
//! consumer that reads back what the relay published.

use carshare_event_store::kafka::{self, KafkaSettings};
use carshare_event_store::StoredEvent;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::Message;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use uuid::Uuid;

/// The shared broker.
pub fn brokers() -> String {
    std::env::var("TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A topic prefix no other test uses.
pub fn fresh_prefix() -> String {
    format!("t{}", &Uuid::new_v4().simple().to_string()[..16])
}

/// Settings for `brokers` under `prefix`: 4 partitions, a short message timeout.
pub fn settings(brokers: &str, prefix: &str) -> KafkaSettings {
    let mut kafka = KafkaSettings::new(brokers);
    kafka.topic_prefix = prefix.to_string();
    kafka.group_prefix = prefix.to_string();
    kafka.partitions = 4;
    kafka.message_timeout = Duration::from_secs(3);
    kafka.client_id = format!("carshare-test-{prefix}");
    kafka
}

/// The environment that points a test app at `brokers` under `prefix`.
pub fn app_env(brokers: &str, prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_BROKERS", brokers.to_string()),
        ("KAFKA_TOPIC_PREFIX", prefix.to_string()),
        ("KAFKA_TOPIC_PARTITIONS", "4".into()),
        ("KAFKA_MESSAGE_TIMEOUT_MS", "3000".into()),
        ("KAFKA_SESSION_TIMEOUT_MS", "6000".into()),
    ]
}

/// One message as read back.
#[derive(Debug, Clone)]
pub struct Received {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Message key.
    pub key: String,
    /// The event in the envelope.
    pub event: StoredEvent,
    /// Headers as text.
    pub headers: HashMap<String, String>,
}

/// A consumer in a group of its own, reading topics from the start.
pub struct TopicReader {
    consumer: StreamConsumer,
}

impl TopicReader {
    /// Reads `topics` (created first if missing).
    pub async fn new(kafka: &KafkaSettings, topics: &[String]) -> TopicReader {
        kafka.ensure_topics(topics).await.expect("topics exist");
        let consumer: StreamConsumer = kafka
            .client_config()
            .set("group.id", format!("reader-{}", Uuid::new_v4().simple()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("fetch.wait.max.ms", "20")
            .create()
            .expect("consumer");
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&refs).expect("subscribe");
        TopicReader { consumer }
    }

    /// Reads until `done` holds for everything read so far, or `timeout` passes.
    pub async fn read_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        while !done(&out) {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Err(e)) => {
                    eprintln!("test consumer: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|x| {
                                    (
                                        x.key.to_string(),
                                        String::from_utf8_lossy(x.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Received {
                        topic: m.topic().to_string(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                        event: kafka::decode(m.payload().unwrap_or_default())
                            .expect("every message is an envelope"),
                        headers,
                    });
                }
            }
        }
        out
    }
}

/// Every (aggregate type, aggregate id, sequence) in the store.
pub async fn stored_keys(pool: &sqlx::PgPool) -> HashSet<(String, String, i64)> {
    sqlx::query_as::<_, (String, String, i64)>(
        "SELECT aggregate_type, aggregate_id, sequence FROM events",
    )
    .fetch_all(pool)
    .await
    .expect("read events")
    .into_iter()
    .collect()
}

/// What a consumer sees after dropping repeats: per aggregate, the sequences in the order they
/// first arrived, and how many repeats were dropped.
pub fn first_arrivals(received: &[Received]) -> (BTreeMap<(String, String), Vec<i64>>, usize) {
    let mut seen = HashSet::new();
    let mut per_aggregate: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    let mut repeats = 0;
    for r in received {
        let e = &r.event;
        if seen.insert((e.aggregate_type.clone(), e.aggregate_id.clone(), e.sequence)) {
            per_aggregate
                .entry((e.aggregate_type.clone(), e.aggregate_id.clone()))
                .or_default()
                .push(e.sequence);
        } else {
            repeats += 1;
        }
    }
    (per_aggregate, repeats)
}

/// Asserts that, repeats dropped, every stored event arrived exactly once and each aggregate's
/// events arrived in sequence order (1, 2, 3, ...). Returns the number of repeats.
pub fn assert_complete_and_ordered(
    received: &[Received],
    stored: &HashSet<(String, String, i64)>,
) -> usize {
    let (per_aggregate, repeats) = first_arrivals(received);
    let arrived: HashSet<(String, String, i64)> = per_aggregate
        .iter()
        .flat_map(|((t, id), seqs)| seqs.iter().map(move |s| (t.clone(), id.clone(), *s)))
        .collect();
    let missing: Vec<_> = stored.difference(&arrived).take(5).collect();
    assert!(
        missing.is_empty(),
        "events never reached Kafka: {missing:?} ..."
    );
    let extra: Vec<_> = arrived.difference(stored).take(5).collect();
    assert!(
        extra.is_empty(),
        "Kafka holds events the store does not: {extra:?}"
    );
    for ((t, id), seqs) in &per_aggregate {
        let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
        assert_eq!(seqs, &expected, "{t} {id} arrived out of order");
    }
    repeats
}

/// The tansu binary: `TANSU_BIN`, else `~/.cargo/bin/tansu`, else `tansu` on the `PATH`.
pub fn tansu_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        return PathBuf::from(bin);
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Ok(home) = home {
        let bin = home.join("bin").join("tansu");
        if bin.exists() {
            return bin;
        }
    }
    PathBuf::from("tansu")
}

/// A broker of one test's own, on a free port, so the test can stop it without disturbing
/// others. Killed on drop.
pub struct PrivateBroker {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub brokers: String,
}

impl PrivateBroker {
    /// Starts tansu (memory storage) and waits until it accepts connections.
    pub async fn start() -> PrivateBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut child = Command::new(tansu_binary())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu must be installed for the tests (scripts/kafka.sh installs it)");
        let brokers = format!("127.0.0.1:{port}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&brokers).await.is_ok() {
                return PrivateBroker { child, brokers };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the private broker did not start on {brokers}");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is answered, as when
    /// a broker hangs or the network drops packets.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets it run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

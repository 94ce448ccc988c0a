//! Every command the nodes send to Redis, captured with `MONITOR` for the whole run: values
//! that live only briefly (taken link codes, deleted keys) and messages published on the node
//! bus are in Redis too, for whoever can watch it, even if no dump ever sees them stored.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::dump::Entry;

pub struct RedisMonitor {
    prefix: String,
    url: String,
    lines: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for RedisMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisMonitor {
    /// Starts capturing the commands that name a key or channel under `prefix`.
    pub async fn start(url: &str, prefix: &str) -> Self {
        let client = redis::Client::open(url).expect("redis url");
        let monitor = client
            .get_async_monitor()
            .await
            .unwrap_or_else(|e| panic!("MELO_TEST_REDIS_URL is set but MONITOR failed: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (sink, p) = (lines.clone(), prefix.to_owned());
        let task = tokio::spawn(async move {
            let mut stream = monitor.into_on_message::<String>();
            while let Some(line) = stream.next().await {
                // `<time> [<db> <client address>] "CMD" "arg" …`: the client address is the
                // test's own connection, not data; keep the command.
                let cmd = line.split_once("] ").map_or(line.as_str(), |(_, c)| c);
                if cmd.contains(&p) {
                    sink.lock().expect("lines").push(cmd.to_owned());
                }
            }
        });
        Self {
            prefix: prefix.to_owned(),
            url: url.to_owned(),
            lines,
            task,
        }
    }

    /// Waits until every command sent before this call has been captured (a marker command,
    /// sent after them, came through).
    async fn settle(&self) {
        let mark = format!("{}zk-monitor-mark-{}", self.prefix, rand::random::<u64>());
        let client = redis::Client::open(self.url.as_str()).expect("redis url");
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        let _: i64 = redis::cmd("EXISTS")
            .arg(&mark)
            .query_async(&mut con)
            .await
            .expect("EXISTS");
        for _ in 0..200 {
            if self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .any(|l| l.contains(&mark))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("MONITOR did not deliver the marker command");
    }

    /// The captured commands so far, one entry each, named by command and first argument.
    pub async fn entries(&self) -> Vec<Entry> {
        self.settle().await;
        let lines = self.lines.lock().expect("lines");
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let head: String = l.splitn(3, ' ').take(2).collect::<Vec<_>>().join(" ");
                Entry::new(format!("redis command #{i} ({head} …)"), l.as_bytes())
            })
            .collect()
    }
}

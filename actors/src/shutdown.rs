//! One shutdown signal for every long-lived task of a node, in the manner of mini-redis's
//! `shutdown.rs`: each task holds a [`Shutdown`] and returns once it says the node stops; the
//! node's [`ShutdownSignal`] knows every task has returned when the last `Shutdown` is dropped.
//!
//! It stops in two steps. [`ShutdownSignal::stop`] tells what takes new work (the accept loop,
//! connections) to stop; [`ShutdownSignal::finish`], once the work in flight is done, tells the
//! background tasks (the bus, samplers, sweepers), so that what the restaurant actors finish
//! while the node drains is still published.
//!
//! Dropping the signal stops the tasks too, so a store or registry made for one command-line
//! call or one test leaves nothing running behind it.

use tokio::sync::{mpsc, watch};

/// What a long-lived task holds: tells it when to stop; while it is held, the task counts as
/// running.
#[derive(Debug, Clone)]
pub struct Shutdown {
    stopping: watch::Receiver<bool>,
    _running: mpsc::Sender<()>,
}

impl Shutdown {
    /// Completes once the node stops (or its signal is gone). Cancel-safe: for `select!`.
    pub async fn stopped(&mut self) {
        let _ = self.stopping.wait_for(|stopping| *stopping).await;
    }

    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }
}

/// The node's side: hands out [`Shutdown`]s, stops them all, and waits for their tasks.
#[derive(Debug)]
pub struct ShutdownSignal {
    /// Seen by what takes new work.
    stopping: watch::Sender<bool>,
    /// Seen by every [`Shutdown`].
    finishing: watch::Sender<bool>,
    running: mpsc::Sender<()>,
    finished: mpsc::Receiver<()>,
}

impl Default for ShutdownSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownSignal {
    pub fn new() -> Self {
        let (running, finished) = mpsc::channel(1);
        Self {
            stopping: watch::Sender::new(false),
            finishing: watch::Sender::new(false),
            running,
            finished,
        }
    }

    /// For a background task that runs until the node finishes, and that the node waits for.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown {
            stopping: self.finishing.subscribe(),
            _running: self.running.clone(),
        }
    }

    /// For what takes new work: turns true at [`ShutdownSignal::stop`]. The node does not wait
    /// for these here (the HTTP server waits for its connections itself).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Tells what takes new work to stop.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Tells every background task to stop and waits until each has returned (dropped its
    /// [`Shutdown`]), at most until `deadline`; false if some were still running then.
    pub async fn finish(self, deadline: tokio::time::Instant) -> bool {
        self.stop();
        self.finishing.send_replace(true);
        let Self {
            stopping,
            finishing,
            running,
            mut finished,
        } = self;
        drop(running);
        let done = tokio::time::timeout_at(deadline, finished.recv()).await;
        drop((stopping, finishing));
        done.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn finish_waits_for_every_task_and_no_longer() {
        let signal = ShutdownSignal::new();
        let mut quick = signal.shutdown();
        let quick = tokio::spawn(async move { quick.stopped().await });
        let slow = signal.shutdown();
        let slow = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(slow);
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        assert!(signal.finish(deadline).await);
        assert!(quick.is_finished() && slow.is_finished());

        let signal = ShutdownSignal::new();
        let stuck = signal.shutdown();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        assert!(!signal.finish(deadline).await, "a task that never stops");
        assert!(stuck.is_stopping());
    }

    #[tokio::test(start_paused = true)]
    async fn stop_leaves_background_tasks_running_until_finish() {
        let signal = ShutdownSignal::new();
        let accepting = signal.subscribe();
        let background = signal.shutdown();
        signal.stop();
        assert!(*accepting.borrow());
        assert!(!background.is_stopping());
        drop(background);
        assert!(signal.finish(tokio::time::Instant::now()).await);
    }

    #[tokio::test]
    async fn dropping_the_signal_stops_the_tasks() {
        let signal = ShutdownSignal::new();
        let mut shutdown = signal.shutdown();
        drop(signal);
        shutdown.stopped().await;
    }
}

//! The node's shutdown signal as its tasks see it, in paused time: what counts as a running
//! task, the two steps of stopping, and the deadline.

use std::time::Duration;

use orderhub_actors::shutdown::ShutdownSignal;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(5);

#[tokio::test(start_paused = true)]
async fn a_default_signal_has_stopped_nothing() {
    let signal = ShutdownSignal::default();
    let accepting = signal.subscribe();
    let background = signal.shutdown();
    assert!(!*accepting.borrow());
    assert!(!background.is_stopping());
    drop(background);
    assert!(signal.finish(Instant::now()).await);
}

#[tokio::test(start_paused = true)]
async fn a_clone_of_a_shutdown_is_a_task_still_running() {
    let signal = ShutdownSignal::new();
    let first = signal.shutdown();
    let clone = first.clone();
    drop(first);

    let started = Instant::now();
    assert!(!signal.finish(started + DEADLINE).await);
    assert_eq!(
        started.elapsed(),
        DEADLINE,
        "finish gave up before its deadline"
    );
    assert!(clone.is_stopping());
}

#[tokio::test(start_paused = true)]
async fn finish_stops_what_takes_new_work_and_then_every_background_task() {
    let signal = ShutdownSignal::new();
    let mut accepting = signal.subscribe();
    assert!(!*accepting.borrow_and_update());
    let mut background = signal.shutdown();
    let task = tokio::spawn(async move {
        background.stopped().await;
        background.is_stopping()
    });

    let started = Instant::now();
    assert!(signal.finish(started + DEADLINE).await);
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert!(
        task.await.expect("the task ends"),
        "stopped before stopping"
    );
    assert!(
        *accepting.borrow_and_update(),
        "what takes new work goes on"
    );
}

#[tokio::test(start_paused = true)]
async fn stopped_can_be_raced_and_waited_for_again() {
    let signal = ShutdownSignal::new();
    let mut background = signal.shutdown();
    // Cancelled by the other branch: waiting again later still works.
    tokio::select! {
        () = background.stopped() => panic!("stopped before the signal"),
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    let task = tokio::spawn(async move { background.stopped().await });
    assert!(signal.finish(Instant::now() + DEADLINE).await);
    task.await.expect("the task ends");
}

//! Writes with bounded concurrency, their results in the order they were queued. A write's future is made only
//! when it is queued, and at most `limit` wait at once: at 100,000 snapshots one future per planned write, made
//! up front, held several hundred MB (a request future is a few KB) before the first one was sent.

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use std::future::Future;

/// Up to `limit` futures in flight; [`InOrder::push`] waits for the oldest one when full.
pub(crate) struct InOrder<F: Future> {
    in_flight: FuturesOrdered<F>,
    limit: usize,
    done: Vec<F::Output>,
}

impl<F: Future> InOrder<F> {
    /// `limit` at once (at least one); `expected`: how many will be pushed (the results' capacity).
    pub(crate) fn new(limit: usize, expected: usize) -> Self {
        InOrder {
            in_flight: FuturesOrdered::new(),
            limit: limit.max(1),
            done: Vec::with_capacity(expected),
        }
    }

    /// Queues `write`, first waiting for the oldest write in flight if `limit` are.
    pub(crate) async fn push(&mut self, write: F) {
        if self.in_flight.len() >= self.limit
            && let Some(out) = self.in_flight.next().await
        {
            self.done.push(out);
        }
        self.in_flight.push_back(write);
    }

    /// Waits for the rest; every result, in the order pushed.
    pub(crate) async fn finish(mut self) -> Vec<F::Output> {
        while let Some(out) = self.in_flight.next().await {
            self.done.push(out);
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    #[tokio::test]
    async fn results_come_in_push_order_with_at_most_limit_in_flight() {
        let running = Cell::new(0usize);
        let most = Cell::new(0usize);
        let write = |i: u64| {
            let (running, most) = (&running, &most);
            async move {
                running.set(running.get() + 1);
                most.set(most.get().max(running.get()));
                // Later pushes finish sooner: the order must still be the push order.
                tokio::time::sleep(Duration::from_millis(40 - i * 5)).await;
                running.set(running.get() - 1);
                i
            }
        };
        let mut writes = InOrder::new(3, 8);
        for i in 0..8 {
            writes.push(write(i)).await;
        }
        assert_eq!(writes.finish().await, (0..8).collect::<Vec<_>>());
        assert_eq!(most.get(), 3);
    }
}

//! Handing a record to a producer whose queue may be full.
//!
//! librdkafka refuses a record with `QueueFull` while its local queue holds
//! `queue.buffering.max.messages` (or `.kbytes`); rdkafka hands the record back with the
//! error. The worker's outputs and the bench's load generator and relay all wait and offer
//! it again, so the headers moved into it are built once.
use rdkafka::error::KafkaError;
use rdkafka::message::ToBytes;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// Hands `record` to `producer`, waiting `pause` at a time while its queue is full; any
/// other refusal is returned.
pub async fn send_when_queued<K, P>(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, K, P>,
    pause: Duration,
) -> Result<DeliveryFuture, KafkaError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send_result(record) {
            Ok(f) => return Ok(f),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(pause).await;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rdkafka::config::ClientConfig;

    /// A producer with room for one record and no broker: a queued record leaves the queue
    /// only when its delivery times out.
    fn one_record_producer() -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("queue.buffering.max.messages", "1")
            .set("message.timeout.ms", "300")
            .create()
            .unwrap()
    }

    #[tokio::test]
    async fn a_full_queue_is_waited_out_and_the_record_then_queued() {
        let producer = one_record_producer();
        let first = send_when_queued(
            &producer,
            FutureRecord::<(), _>::to("t").payload("a"),
            Duration::from_millis(5),
        )
        .await
        .unwrap();
        // The queue is full now: offered directly, the second record is refused.
        let refused = producer.send_result(FutureRecord::<(), _>::to("t").payload("b"));
        assert!(matches!(
            refused,
            Err((
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                _
            ))
        ));
        let second = send_when_queued(
            &producer,
            FutureRecord::<(), _>::to("t").payload("b"),
            Duration::from_millis(5),
        )
        .await
        .unwrap();
        // It was queued once the first record's delivery timed out and left the queue.
        assert!(matches!(first.await, Ok(Err(_))));
        assert!(matches!(second.await, Ok(Err(_))));
    }
}

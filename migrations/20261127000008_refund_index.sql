-- Finding refunds decided and not yet carried out (the refund sweeper) without scanning the log.
CREATE INDEX events_refund_requests_idx ON events (aggregate_id, sequence)
    WHERE aggregate_type = 'Payment' AND event_type = 'RefundRequested';

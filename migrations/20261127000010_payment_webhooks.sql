-- Every Toss webhook delivery, with what it led to (support and reconciliation audits).
CREATE TABLE payment_webhook_deliveries (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    event_type   text        NOT NULL,
    payment_key  text,
    order_id     text,
    outcome      text        NOT NULL,
    body         jsonb       NOT NULL
);
CREATE INDEX payment_webhook_deliveries_key_idx ON payment_webhook_deliveries (payment_key);

-- Accounts. Not event-sourced: personal data lives only here, so a person can be erased
-- (anonymised in place) while the event log, which names users by id only, stays valid.
CREATE TABLE users (
    id                uuid        PRIMARY KEY,
    email             text        NOT NULL,
    password_hash     text        NOT NULL,
    name              text        NOT NULL,
    phone             text        NOT NULL,
    role              text        NOT NULL CHECK (role IN ('guest', 'host', 'admin')),
    profile_image_url text,
    is_verified       boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    erased_at         timestamptz
);

-- E-mail addresses are unique whatever their case (they are stored lower-cased as well).
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

COMMENT ON TABLE users IS 'Accounts with their personal data (never copied into events). Erased accounts keep their row, anonymised.';

-- Refresh tokens: opaque, stored as SHA-256 hashes, rotated on every use. Each login starts a
-- family; presenting a token that was already rotated revokes its whole family.
CREATE TABLE refresh_tokens (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  uuid        NOT NULL,
    token_hash bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz,
    revoked_at timestamptz
);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Corporate host profiles (법인 프로필), verified by admins.
CREATE TABLE corporate_profiles (
    id                           uuid        PRIMARY KEY,
    user_id                      uuid        NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    company_name                 text        NOT NULL,
    business_registration_number text        NOT NULL UNIQUE,
    tax_id                       text,
    status                       text        NOT NULL DEFAULT 'pending'
                                             CHECK (status IN ('pending', 'verified', 'rejected')),
    verification_documents       jsonb       NOT NULL DEFAULT '[]',
    rejection_reason             text,
    reviewed_by                  uuid,
    reviewed_at                  timestamptz,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX corporate_profiles_status_idx ON corporate_profiles (status, created_at);

-- Responses to POST requests sent with an Idempotency-Key, kept for a day: the same key and
-- body again gets the stored response; the same key with another body is refused.
CREATE TABLE idempotency_keys (
    scope            text        NOT NULL,
    key              text        NOT NULL,
    request_hash     bytea       NOT NULL,
    status           smallint,
    response_headers jsonb,
    response_body    bytea,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- bench/compare/schema.sql - the four tables of SPEC section 4, with the
-- columns of the records of SPEC section 3 (AttestoPhoenix layout: hashes
-- as primary keys, consumed_at NULL until the one winning claim).
CREATE TABLE attesto_authorization_codes (
    code_hash             text PRIMARY KEY,
    client_id             text NOT NULL,
    subject               text NOT NULL,
    redirect_uri          text NOT NULL,
    scope                 text[] NOT NULL DEFAULT '{}',
    resource              text[] NOT NULL DEFAULT '{}',
    code_challenge        text,
    code_challenge_method text,
    dpop_jkt              text,
    x5t_s256              text,
    nonce                 text,
    claims                bytea,
    family_id             text,
    expires_at            timestamptz NOT NULL,
    consumed_at           timestamptz,
    consumed_success      boolean NOT NULL DEFAULT false,
    inserted_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attesto_authorization_codes_expires_at ON attesto_authorization_codes (expires_at);

CREATE TABLE attesto_refresh_tokens (
    token_hash  text PRIMARY KEY,
    family_id   text NOT NULL,
    subject     text NOT NULL,
    client_id   text,
    generation  integer NOT NULL DEFAULT 0,
    scope       text[] NOT NULL DEFAULT '{}',
    resource    text[] NOT NULL DEFAULT '{}',
    acr         text,
    auth_time   timestamptz,
    dpop_jkt    text,
    x5t_s256    text,
    claims      bytea,
    parent_hash text,
    successor   bytea,
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz,
    revoked_at  timestamptz,
    inserted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attesto_refresh_tokens_family_id ON attesto_refresh_tokens (family_id);
CREATE INDEX attesto_refresh_tokens_expires_at ON attesto_refresh_tokens (expires_at);

CREATE TABLE dpop_nonces (
    nonce       text PRIMARY KEY,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz
);
CREATE INDEX dpop_nonces_expires_at ON dpop_nonces (expires_at);

CREATE TABLE dpop_replays (
    jti         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dpop_replays_expires_at ON dpop_replays (expires_at);

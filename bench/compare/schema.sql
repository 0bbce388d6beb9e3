-- bench/compare/schema.sql - the five tables oncestore's PostgreSQL engine
-- works on: AttestoPhoenix 3.5.1's, exactly as its migration generator
-- emits them (ATTESTO-PG section 1.2, the same DDL `oncestore schema`
-- prints), in one transaction as Ecto runs it.  once_open checks these
-- columns, so a drift here fails the oncestore rows at once.
BEGIN;
CREATE TABLE "attesto_authorization_codes" ("code_hash" varchar(88) NOT NULL, "client_id" varchar(255) NOT NULL, "subject" varchar(255) NOT NULL, "scope" varchar(255)[] DEFAULT ARRAY[]::varchar[] NOT NULL, "resource" varchar(255)[] DEFAULT ARRAY[]::varchar[] NOT NULL, "redirect_uri" text NOT NULL, "code_challenge" varchar(255), "code_challenge_method" varchar(16), "cnf" jsonb, "nonce" varchar(255), "claims" jsonb DEFAULT '{}' NOT NULL, "family_id" varchar(255), "access_token_jti" varchar(255), "access_token_expires_at" timestamp(0), "access_token_revoked_at" timestamp(0), "expires_at" timestamp(0) NOT NULL, "consumed_at" timestamp(0), "consumed_success" boolean DEFAULT false NOT NULL, "inserted_at" timestamp(0) NOT NULL, PRIMARY KEY ("code_hash"));
CREATE INDEX "attesto_authorization_codes_expires_at_index" ON "attesto_authorization_codes" ("expires_at");
CREATE INDEX "attesto_authorization_codes_family_id_index" ON "attesto_authorization_codes" ("family_id");
CREATE INDEX "attesto_authorization_codes_access_token_jti_index" ON "attesto_authorization_codes" ("access_token_jti");
CREATE TABLE "attesto_refresh_tokens" ("id" uuid, "token_hash" varchar(88) NOT NULL, "family_id" varchar(255) NOT NULL, "generation" integer DEFAULT 0 NOT NULL, "client_id" varchar(255), "subject" varchar(255) NOT NULL, "scope" varchar(255)[] DEFAULT ARRAY[]::varchar[] NOT NULL, "resource" varchar(255)[] DEFAULT ARRAY[]::varchar[] NOT NULL, "acr" varchar(255), "auth_time" bigint, "family_expires_at" bigint, "attestation_jkt" varchar(43), "cnf" jsonb, "claims" jsonb DEFAULT '{}' NOT NULL, "consumed" boolean DEFAULT false NOT NULL, "consumed_at" timestamp(0), "successor" jsonb, "family_revoked" boolean DEFAULT false NOT NULL, "expires_at" timestamp(0) NOT NULL, "parent_hash" varchar(88), "inserted_at" timestamp(0) NOT NULL, PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "attesto_refresh_tokens_token_hash_index" ON "attesto_refresh_tokens" ("token_hash");
CREATE UNIQUE INDEX "attesto_refresh_tokens_family_id_generation_index" ON "attesto_refresh_tokens" ("family_id", "generation");
CREATE INDEX "attesto_refresh_tokens_family_id_index" ON "attesto_refresh_tokens" ("family_id");
CREATE INDEX "attesto_refresh_tokens_expires_at_index" ON "attesto_refresh_tokens" ("expires_at");
CREATE TABLE "attesto_refresh_family_revocations" ("family_id" varchar(255) NOT NULL, "revoked_at" timestamp(0) NOT NULL, PRIMARY KEY ("family_id"));
CREATE TABLE "dpop_nonces" ("id" uuid, "nonce" varchar(255) NOT NULL, "issued_at" timestamp(0) NOT NULL, "expires_at" timestamp(0) NOT NULL, "used_at" timestamp(0), PRIMARY KEY ("id"));
CREATE UNIQUE INDEX "dpop_nonces_nonce_index" ON "dpop_nonces" ("nonce");
CREATE INDEX "dpop_nonces_unused_index" ON "dpop_nonces" ("used_at") WHERE used_at IS NULL;
CREATE TABLE "dpop_replays" ("jti" varchar(255) NOT NULL, "expires_at" timestamp NOT NULL, "inserted_at" timestamp NOT NULL, PRIMARY KEY ("jti"));
CREATE INDEX "dpop_replays_expires_at_index" ON "dpop_replays" ("expires_at");
COMMIT;

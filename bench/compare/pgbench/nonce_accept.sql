-- nonce accept: consume a DPoP server nonce that is live and unused.
\set id random(1, :rows)
UPDATE dpop_nonces SET consumed_at = now()
WHERE nonce = 'n' || lpad(CAST(:id AS text), 42, '0') AND consumed_at IS NULL
  AND expires_at > now()
RETURNING issued_at;

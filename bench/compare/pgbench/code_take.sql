-- code take: claim an authorization code; exactly one caller gets the row.
\set id random(1, :rows)
UPDATE attesto_authorization_codes SET consumed_at = now()
WHERE code_hash = 'c' || lpad(CAST(:id AS text), 42, '0') AND consumed_at IS NULL
RETURNING client_id, subject, redirect_uri, scope, resource, code_challenge,
          code_challenge_method, dpop_jkt, x5t_s256, nonce, claims, family_id, expires_at;

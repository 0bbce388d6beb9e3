-- replay check: record a DPoP proof's jti (jkt ':' uuid, 80 characters); a
-- row back means first sight, none means replay.
\set id random(1, 1000000000000)
INSERT INTO dpop_replays (jti, expires_at)
VALUES ('0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I:' || lpad(CAST(:id AS text), 36, '0'),
        now() + interval '60 seconds')
ON CONFLICT DO NOTHING RETURNING jti;

-- name: upsert_user
-- Users are created from the token's claims on first use. Every unique index is an
-- arbiter: with `ON CONFLICT (id)` a concurrent first request of the same new user
-- could fail on users_email_key instead of waiting and doing nothing. No row back:
-- the user exists, or the email belongs to another account (the caller tells which).
INSERT INTO users (id, email, name, role)
VALUES (:id, :email, :name, CAST(:role AS user_role))
ON CONFLICT DO NOTHING
RETURNING id

-- name: insert_user
-- No row back: the id or the email is taken. Not an error, so the server logs no
-- DETAIL line naming the email (the logs hold ids, never personal data).
INSERT INTO users (id, email, name, role)
VALUES (:id, :email, :name, CAST(:role AS user_role))
ON CONFLICT DO NOTHING
RETURNING id, email, name, role

-- name: select_user
SELECT id, email, name, role FROM users WHERE id = :id

-- name: insert_patient_profile
-- A field the request left out keeps its value; one given (null included) replaces it.
INSERT INTO patients_profiles (user_id, phone, date_of_birth)
VALUES (:user_id, :phone, :date_of_birth)
ON CONFLICT (user_id) DO UPDATE
    SET phone = CASE WHEN CAST(:set_phone AS boolean) THEN EXCLUDED.phone ELSE patients_profiles.phone END,
        date_of_birth = CASE WHEN CAST(:set_date_of_birth AS boolean) THEN EXCLUDED.date_of_birth
                             ELSE patients_profiles.date_of_birth END
RETURNING user_id, phone, date_of_birth, (xmax = 0) AS created

-- name: select_patient
SELECT u.id, u.email, u.name, p.phone, p.date_of_birth
FROM patients_profiles AS p
JOIN users AS u ON u.id = p.user_id
WHERE p.user_id = :user_id

-- name: insert_patient_profile_if_missing
INSERT INTO patients_profiles (user_id) VALUES (:user_id)
ON CONFLICT (user_id) DO NOTHING

-- name: find_patients
-- A substring of the name or email (LIKE's wildcards in it escaped with '!' by the caller): a
-- scan of the clinic's patients, fine for the front desk's occasional search.
SELECT u.id, u.email, u.name, p.phone, p.date_of_birth
FROM patients_profiles AS p
JOIN users AS u ON u.id = p.user_id
WHERE (CAST(:pattern AS text) IS NULL
       OR lower(u.name) LIKE :pattern ESCAPE '!' OR u.email LIKE :pattern ESCAPE '!')
  AND (CAST(:after_name AS text) IS NULL OR (u.name, u.id) > (:after_name, CAST(:after_id AS uuid)))
ORDER BY u.name, u.id
LIMIT :limit

-- name: doctor_sees_patient
-- A doctor sees the patients who have (or had) an appointment with them.
SELECT EXISTS (SELECT 1 FROM appointments WHERE doctor_id = :doctor_id AND patient_id = :patient_id) AS sees

-- Account state for the admin commands (XEP-0133): when an administrator
-- disabled the account (NULL: enabled) and when it last logged in (NULL: never).
ALTER TABLE accounts ADD COLUMN disabled_us INTEGER;
ALTER TABLE accounts ADD COLUMN last_login_us INTEGER;

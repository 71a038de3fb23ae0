-- name: touch_all#
DO $$
BEGIN
    PERFORM pg_sleep(:delay);
END
$$;

-- Booking events waiting to be shipped to the event log (Kinesis): a row is
-- written in the transaction of the change it records (`booked`,
-- `cancelled`, `hold_expired`), so a change that committed is never missing
-- from the log, and the shippers delete it once Kinesis has taken it.
-- `id` becomes the event's id (`b:<id>`); `body` holds the fields of its type
-- as a JSON object. Rows are written only while the event log is on.
CREATE TABLE event_outbox (
    id         BIGINT      NOT NULL AUTO_INCREMENT,
    event_id   VARCHAR(64) NOT NULL,
    kind       VARCHAR(32) NOT NULL,
    body       TEXT        NOT NULL,
    replica    VARCHAR(128) NOT NULL,
    created_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Each event's seats and how many are reserved, counted in the transaction
-- of every confirm and cancellation (never touched by holds), so that the
-- automatic sold-out switch needs no lock that holds would wait for.
-- `version` grows at every change and orders the decisions sent to Redis.
CREATE TABLE event_stock (
    event_id   VARCHAR(64) NOT NULL,
    seats      INT         NOT NULL,
    reserved   INT         NOT NULL DEFAULT 0,
    version    BIGINT      NOT NULL DEFAULT 0,
    updated_at DATETIME(3) NOT NULL,
    PRIMARY KEY (event_id),
    KEY event_stock_updated (updated_at),
    CONSTRAINT event_stock_event FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

INSERT INTO event_stock (event_id, seats, reserved, version, updated_at)
SELECT e.id,
       (SELECT COUNT(*) FROM seats s WHERE s.event_id = e.id),
       (SELECT COUNT(*) FROM seat_claims c WHERE c.event_id = e.id AND c.reservation_id IS NOT NULL),
       1,
       UTC_TIMESTAMP(3)
FROM events e;

-- Catalog (events, seats) and bookings (holds, reservations).
-- Runs on Aurora MySQL 3 (MySQL 8.0) and MariaDB 10.11: no engine-specific
-- syntax, every time in UTC (the app sets time_zone = '+00:00'). Binary
-- collation: ids, seats and idempotency keys compare exactly, as the API
-- does (`A-1-1` and `a-1-1` are two seats).

CREATE TABLE events (
    id            VARCHAR(64)  NOT NULL,
    name          VARCHAR(200) NOT NULL,
    venue         VARCHAR(200) NOT NULL,
    starts_at     DATETIME(3)  NOT NULL,
    sale_opens_at DATETIME(3)  NOT NULL,
    created_at    DATETIME(3)  NOT NULL,
    updated_at    DATETIME(3)  NOT NULL,
    PRIMARY KEY (id),
    KEY events_by_start (starts_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- seat_id is `{section}-{row}-{number}`; row_rank orders rows front to back.
CREATE TABLE seats (
    event_id   VARCHAR(64)  NOT NULL,
    seat_id    VARCHAR(100) NOT NULL,
    section    VARCHAR(32)  NOT NULL,
    row_label  VARCHAR(16)  NOT NULL,
    row_rank   INT          NOT NULL,
    number     INT          NOT NULL,
    price_tier VARCHAR(32)  NOT NULL,
    PRIMARY KEY (event_id, seat_id),
    UNIQUE KEY seats_position (event_id, section, row_label, number),
    CONSTRAINT seats_event FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE holds (
    id             VARCHAR(32) NOT NULL,
    event_id       VARCHAR(64) NOT NULL,
    ticket         VARCHAR(32) NOT NULL,
    status         VARCHAR(16) NOT NULL,
    created_at     DATETIME(3) NOT NULL,
    expires_at     DATETIME(3) NOT NULL,
    reservation_id VARCHAR(32) NULL,
    PRIMARY KEY (id),
    KEY holds_expiry (status, expires_at),
    CONSTRAINT holds_event FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE hold_seats (
    hold_id  VARCHAR(32)  NOT NULL,
    seat_id  VARCHAR(100) NOT NULL,
    PRIMARY KEY (hold_id, seat_id),
    CONSTRAINT hold_seats_hold FOREIGN KEY (hold_id) REFERENCES holds (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per confirmed hold: the UNIQUE hold_id is what makes a retried
-- confirm return the same reservation instead of a second one.
CREATE TABLE reservations (
    id              VARCHAR(32)  NOT NULL,
    event_id        VARCHAR(64)  NOT NULL,
    hold_id         VARCHAR(32)  NOT NULL,
    ticket          VARCHAR(32)  NOT NULL,
    idempotency_key VARCHAR(200) NULL,
    created_at      DATETIME(3)  NOT NULL,
    cancelled_at    DATETIME(3)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY reservations_hold (hold_id),
    UNIQUE KEY reservations_idempotency (ticket, idempotency_key),
    KEY reservations_by_ticket (event_id, ticket),
    CONSTRAINT reservations_event FOREIGN KEY (event_id) REFERENCES events (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE reservation_seats (
    reservation_id VARCHAR(32)  NOT NULL,
    seat_id        VARCHAR(100) NOT NULL,
    PRIMARY KEY (reservation_id, seat_id),
    CONSTRAINT reservation_seats_reservation FOREIGN KEY (reservation_id) REFERENCES reservations (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The guarantee: a seat has at most one claim at a time (its primary key),
-- a claim being a live hold (expires_at set) or a reservation.
CREATE TABLE seat_claims (
    event_id       VARCHAR(64)  NOT NULL,
    seat_id        VARCHAR(100) NOT NULL,
    ticket         VARCHAR(32)  NOT NULL,
    hold_id        VARCHAR(32)  NULL,
    reservation_id VARCHAR(32)  NULL,
    expires_at     DATETIME(3)  NULL,
    PRIMARY KEY (event_id, seat_id),
    KEY seat_claims_ticket (event_id, ticket),
    KEY seat_claims_hold (hold_id),
    KEY seat_claims_reservation (reservation_id),
    KEY seat_claims_expiry (expires_at),
    CONSTRAINT seat_claims_seat FOREIGN KEY (event_id, seat_id) REFERENCES seats (event_id, seat_id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per fan per event, locked while a hold is made, so that one fan's
-- parallel requests cannot together pass the seats-per-ticket limit.
CREATE TABLE ticket_locks (
    event_id VARCHAR(64) NOT NULL,
    ticket   VARCHAR(32) NOT NULL,
    PRIMARY KEY (event_id, ticket),
    CONSTRAINT ticket_locks_event FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

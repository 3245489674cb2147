-- The time zone an event takes place in (an IANA name such as Asia/Seoul):
-- the fans' page names it when it shows the event's times.
ALTER TABLE events ADD COLUMN time_zone VARCHAR(64) NOT NULL DEFAULT 'UTC';

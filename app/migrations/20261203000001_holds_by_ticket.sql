-- A confirm releases the fan's other holds of the event (`UPDATE holds ...
-- WHERE event_id = ? AND ticket = ?`). With only an index on event_id, that
-- statement locked every hold of the event: each confirm waited for the
-- holds other fans were making or confirming, blocked new holds of the event
-- until it committed, and confirms at the same moment deadlocked (a bench
-- with 30 events' holds in the table lost 67 of 100 confirms that way).
-- Indexed by fan, it locks that fan's holds only. The new index also serves
-- the foreign key, so the old one goes in the same statement.
ALTER TABLE holds ADD KEY holds_ticket (event_id, ticket), DROP KEY holds_event;

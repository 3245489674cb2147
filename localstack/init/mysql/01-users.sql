-- The users the app and its tools connect as, the same as `cargo xtask dev`
-- creates on MariaDB (xtask/devstack, MariaDb::create_database): `migrator`
-- changes the schema, `app` reads and writes, `reader` only reads. MySQL's
-- entrypoint runs this once, when the data volume is new, after creating
-- the `tickets` database (MYSQL_DATABASE).
CREATE USER IF NOT EXISTS 'migrator'@'%' IDENTIFIED BY 'migrator-pw';
CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'app-pw';
CREATE USER IF NOT EXISTS 'reader'@'%' IDENTIFIED BY 'reader-pw';
GRANT ALL PRIVILEGES ON `tickets`.* TO 'migrator'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE ON `tickets`.* TO 'app'@'%';
GRANT SELECT ON `tickets`.* TO 'reader'@'%';

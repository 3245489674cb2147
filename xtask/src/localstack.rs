//! `cargo xtask dev --aws localstack`: the Docker Compose stack in
//! `localstack/` (MySQL 8, Valkey 7, LocalStack with Kinesis and STS) in
//! place of the local Redis, MariaDB and moto that `cargo xtask dev` starts.
//! xtask only connects to it; starting it is Docker's job.
//!
//! The ports, database and users here are the compose file's; the tests
//! below hold `localstack/docker-compose.yml` and its init scripts to them
//! (and `cargo xtask test` checks the file against the Compose schema, see
//! helm.rs).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use devstack::http_request;

use crate::Result;

pub const COMPOSE_FILE: &str = "localstack/docker-compose.yml";
/// How to start the stack (from the workspace root).
pub const UP: &str = "docker compose -f localstack/docker-compose.yml up -d --wait";
pub const LOCALSTACK_PORT: u16 = 4566;
pub const REDIS_PORT: u16 = 6379;
pub const MYSQL_PORT: u16 = 3306;
pub const DATABASE: &str = "tickets";
/// The users of `localstack/init/mysql/01-users.sql`, as devstack's MariaDB
/// has them: (user, password).
pub const MIGRATOR: (&str, &str) = ("migrator", "migrator-pw");
pub const APP: (&str, &str) = ("app", "app-pw");
pub const READER: (&str, &str) = ("reader", "reader-pw");

/// The endpoint the app and the audit give the SDK.
pub fn endpoint() -> String {
    format!("http://localhost:{LOCALSTACK_PORT}")
}

pub fn localstack_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], LOCALSTACK_PORT))
}

pub fn redis_url() -> String {
    format!("redis://127.0.0.1:{REDIS_PORT}")
}

pub fn database_url((user, password): (&str, &str)) -> String {
    format!("mysql://{user}:{password}@127.0.0.1:{MYSQL_PORT}/{DATABASE}")
}

fn not_up(what: &str, detail: &str) -> Box<dyn std::error::Error> {
    format!(
        "{what} of the localstack stack is not reachable ({detail}). Start the stack with:\n    \
         export LOCALSTACK_AUTH_TOKEN=...   # your LocalStack auth token\n    {UP}\n\
         (see localstack/README.md)"
    )
    .into()
}

/// Checks that LocalStack (with Kinesis), Valkey and MySQL answer on their
/// ports, with an error that says how to start them.
pub fn check_up() -> Result {
    let health = http_request(localstack_addr(), "GET", "/_localstack/health", &[], None);
    match health {
        Ok((200, body)) if body.contains("\"kinesis\"") => {}
        Ok((200, body)) => {
            return Err(format!(
                "LocalStack at {} runs without Kinesis (SERVICES must include kinesis): {body}",
                endpoint()
            )
            .into())
        }
        Ok((status, body)) => {
            return Err(not_up(
                &format!("LocalStack at {}", endpoint()),
                &format!("{status} {body}"),
            ))
        }
        Err(e) => {
            return Err(not_up(
                &format!("LocalStack at {}", endpoint()),
                &e.to_string(),
            ))
        }
    }
    let ping = || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], REDIS_PORT)),
            Duration::from_secs(2),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"PING\r\n")?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    match ping() {
        Ok(reply) if reply.starts_with("+PONG") => {}
        Ok(reply) => return Err(not_up(&format!("Valkey at {}", redis_url()), reply.trim())),
        Err(e) => {
            return Err(not_up(
                &format!("Valkey at {}", redis_url()),
                &e.to_string(),
            ))
        }
    }
    // MySQL speaks first: a greeting means it accepts connections.
    let greeting = || -> std::io::Result<usize> {
        let mut s = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], MYSQL_PORT)),
            Duration::from_secs(2),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = [0u8; 16];
        s.read(&mut buf)
    };
    match greeting() {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err(not_up(
            &format!("MySQL on 127.0.0.1:{MYSQL_PORT}"),
            "closed without a greeting",
        )),
        Err(e) => Err(not_up(
            &format!("MySQL on 127.0.0.1:{MYSQL_PORT}"),
            &e.to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::kinesis;
    use crate::yaml::{self, Yaml};

    fn root() -> PathBuf {
        crate::project_root()
    }

    fn compose() -> Yaml {
        let text = std::fs::read_to_string(root().join(COMPOSE_FILE)).unwrap();
        yaml::parse(&text).unwrap_or_else(|e| panic!("{COMPOSE_FILE}: {e}"))
    }

    fn service<'a>(doc: &'a Yaml, name: &str) -> &'a Yaml {
        doc.at(&["services", name])
            .unwrap_or_else(|| panic!("{COMPOSE_FILE} has no service `{name}`"))
    }

    fn env<'a>(svc: &'a Yaml, var: &str) -> &'a str {
        svc.at(&["environment", var])
            .and_then(Yaml::str)
            .unwrap_or_else(|| panic!("no {var} in {svc:?}"))
    }

    #[test]
    fn the_compose_stack_is_mysql_valkey_and_localstack() {
        let doc = compose();
        assert_eq!(
            doc.get("services").unwrap().keys(),
            ["mysql", "valkey", "localstack"]
        );
        for name in ["mysql", "valkey", "localstack"] {
            let svc = service(&doc, name);
            assert!(
                !svc.at(&["healthcheck", "test"]).unwrap().strs().is_empty(),
                "{name} has a healthcheck (`up --wait` waits for it)"
            );
        }
    }

    #[test]
    fn every_image_is_pinned_to_a_version() {
        let doc = compose();
        let image = |name: &str| {
            service(&doc, name)
                .get("image")
                .and_then(Yaml::str)
                .unwrap()
                .to_string()
        };
        for name in ["mysql", "valkey", "localstack"] {
            let image = image(name);
            let (_, tag) = image
                .rsplit_once(':')
                .unwrap_or_else(|| panic!("{name}: `{image}` names no tag"));
            assert!(
                tag != "latest" && !tag.contains("latest") && tag.split('.').count() >= 3,
                "{name}: `{image}` is not pinned to a full version"
            );
        }
        assert!(image("mysql").starts_with("mysql:8."), "MySQL 8");
        let cache = image("valkey");
        assert!(
            cache.starts_with("valkey/valkey:7.") || cache.starts_with("redis:7."),
            "Valkey or Redis 7: {cache}"
        );
        assert!(image("localstack").starts_with("localstack/localstack:"));
    }

    #[test]
    fn the_ports_are_the_ones_dev_connects_to() {
        let doc = compose();
        for (name, port) in [
            ("mysql", MYSQL_PORT),
            ("valkey", REDIS_PORT),
            ("localstack", LOCALSTACK_PORT),
        ] {
            let ports = service(&doc, name).get("ports").unwrap().strs();
            assert_eq!(
                ports,
                [format!("127.0.0.1:{port}:{port}")],
                "{name} is published on 127.0.0.1:{port} only"
            );
        }
    }

    #[test]
    fn localstack_serves_the_stream_the_app_writes_to() {
        let doc = compose();
        let svc = service(&doc, "localstack");
        let services: Vec<&str> = env(svc, "SERVICES").split(',').collect();
        assert!(
            services.contains(&"kinesis") && services.contains(&"sts"),
            "{services:?}"
        );
        assert_eq!(
            env(svc, "LOCALSTACK_AUTH_TOKEN"),
            "${LOCALSTACK_AUTH_TOKEN}",
            "the token comes from the environment, never from the file"
        );
        assert_eq!(env(svc, "KINESIS_STREAM"), kinesis::STREAM);
        assert_eq!(env(svc, "KINESIS_SHARDS"), kinesis::SHARDS.to_string());
        assert_eq!(env(svc, "AWS_DEFAULT_REGION"), kinesis::REGION);
        assert_eq!(endpoint(), "http://localhost:4566");

        let mounts = svc.get("volumes").unwrap().strs();
        assert!(
            mounts.contains(&"./init/ready.d:/etc/localstack/init/ready.d:ro"),
            "{mounts:?}"
        );
        let dir = root().join("localstack/init/ready.d");
        let scripts: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sh"))
            .collect();
        assert_eq!(scripts.len(), 1, "{scripts:?}");
        let script = std::fs::read_to_string(&scripts[0]).unwrap();
        for needed in [
            "awslocal kinesis create-stream",
            "--stream-name \"$stream\"",
            "--shard-count \"$shards\"",
            "${KINESIS_STREAM:?}",
            "${KINESIS_SHARDS:?}",
            "set -euo pipefail",
        ] {
            assert!(
                script.contains(needed),
                "{}: no `{needed}`",
                scripts[0].display()
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&scripts[0]).unwrap().permissions().mode();
        assert!(
            mode & 0o111 != 0,
            "LocalStack runs only executable init scripts"
        );
    }

    #[test]
    fn mysql_has_the_database_and_users_dev_connects_as() {
        let doc = compose();
        let svc = service(&doc, "mysql");
        assert_eq!(env(svc, "MYSQL_DATABASE"), DATABASE);
        assert!(svc
            .get("volumes")
            .unwrap()
            .strs()
            .contains(&"./init/mysql:/docker-entrypoint-initdb.d:ro"));
        let sql =
            std::fs::read_to_string(root().join("localstack/init/mysql/01-users.sql")).unwrap();
        for ((user, password), grant) in [
            (MIGRATOR, "ALL PRIVILEGES"),
            (APP, "SELECT, INSERT, UPDATE, DELETE"),
            (READER, "SELECT"),
        ] {
            assert!(
                sql.contains(&format!("'{user}'@'%' IDENTIFIED BY '{password}'")),
                "{user}"
            );
            assert!(
                sql.contains(&format!("GRANT {grant} ON `{DATABASE}`.* TO '{user}'@'%'")),
                "{user}: {grant}"
            );
        }
        assert_eq!(
            database_url(APP),
            "mysql://app:app-pw@127.0.0.1:3306/tickets"
        );
    }

    #[test]
    fn valkey_keeps_every_write_like_devs_redis() {
        let doc = compose();
        let command = service(&doc, "valkey").get("command").unwrap().strs();
        assert_eq!(
            command,
            [
                "valkey-server",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always"
            ]
        );
    }
}

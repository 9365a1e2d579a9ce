//! Client authentication modes and their failures, through to a backend
//! that itself requires SCRAM.

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::{ProxyOptions, TestProxy};
use tokio_postgres::NoTls;

use crate::env::{APP_PASSWORD, APP_USER, LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    let mut trials = Vec::new();
    for mode in ["scram-sha-256", "md5"] {
        trials.push(trial(
            env,
            &format!("auth::{mode}_accepts_right_and_refuses_wrong"),
            move |env| async move {
                let proxy = TestProxy::start(
                    &env.cluster,
                    ProxyOptions {
                        auth_mode: mode,
                        users: vec![(APP_USER.into(), APP_PASSWORD.into())],
                        ..ProxyOptions::default()
                    },
                )
                .await?;
                let port = proxy.port();
                let login = |user: &str, password: &str| {
                    format!(
                        "host=127.0.0.1 port={port} user={user} password={password} dbname=postgres"
                    )
                };
                let (client, connection) =
                    tokio_postgres::connect(&login(APP_USER, APP_PASSWORD), NoTls).await?;
                tokio::spawn(connection);
                let who: String = client.query_one("SELECT current_user", &[]).await?.get(0);
                ensure!(who == APP_USER, "logged in as {who}");

                let e = tokio_postgres::connect(&login(APP_USER, "wrong"), NoTls)
                    .await
                    .err()
                    .context("a wrong password must be refused")?;
                ensure!(code(&e) == Some("28P01"), "wrong password: {e:?}");

                let e = tokio_postgres::connect(&login("nobody", "x"), NoTls)
                    .await
                    .err()
                    .context("an unknown user must be refused")?;
                // As PostgreSQL: not told apart from a wrong password.
                ensure!(code(&e) == Some("28P01"), "unknown user: {e:?}");
                Ok(())
            },
        ));
    }
    trials.push(trial(
        env,
        "auth::trust_passes_the_user_through",
        |env| async move {
            let port = env.proxy.port();
            let (client, connection) = tokio_postgres::connect(
                &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
                NoTls,
            )
            .await?;
            tokio::spawn(connection);
            let who: String = client.query_one("SELECT current_user", &[]).await?.get(0);
            ensure!(who == "postgres");
            // The backend wants SCRAM for `app`, and trust mode has no password
            // to give it: the client hears why.
            let e = tokio_postgres::connect(
                &format!("host=127.0.0.1 port={port} user={APP_USER} dbname=postgres"),
                NoTls,
            )
            .await
            .err()
            .context("no password for the backend")?;
            ensure!(code(&e) == Some("28P01"), "{e:?}");
            // A database that does not exist: PostgreSQL's own error arrives.
            let e = tokio_postgres::connect(
                &format!("host=127.0.0.1 port={port} user=postgres dbname=nope"),
                NoTls,
            )
            .await
            .err()
            .context("unknown database")?;
            ensure!(code(&e) == Some("3D000"), "{e:?}");
            Ok(())
        },
    ));
    trials
}

fn code(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
}

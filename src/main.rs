//! The `rtchat` binary: reads the configuration, starts the embedded PostgreSQL when no
//! `DATABASE_URL` is given, binds, and runs the server until SIGINT or SIGTERM.

use std::process::ExitCode;

use rtchat::config::{Config, Secret};
use rtchat::EmbeddedPostgres;

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        print!("{}", Config::help());
        return ExitCode::SUCCESS;
    }
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rtchat: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    rtchat::init_logging(&config.log_filter);

    // Kept until the server has stopped; dropping it stops PostgreSQL.
    let _embedded = if config.database_url.is_none() {
        let dir = config.data_dir.join("postgres");
        tracing::info!(dir = %dir.display(), "DATABASE_URL is not set: starting the embedded PostgreSQL");
        match EmbeddedPostgres::start(&dir, &[]) {
            Ok(pg) => {
                config.database_url = Some(Secret::new(pg.url()));
                Some(pg)
            }
            Err(e) => {
                eprintln!("rtchat: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| format!("RTCHAT_ADDR: cannot listen on {}: {e}", config.addr))?;
        rtchat::run(listener, config, rtchat::shutdown_signal()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("rtchat: {e}");
            ExitCode::FAILURE
        }
    }
}

//! The `rtchat` binary: reads its arguments and configuration, starts the embedded PostgreSQL when no
//! `DATABASE_URL` is given, binds, and runs the server until SIGINT or SIGTERM.

use std::process::ExitCode;

use rtchat::cli::{self, Command};
use rtchat::config::{Config, Secret};
use rtchat::EmbeddedPostgres;

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let command = match cli::parse_args(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(why) => {
            eprintln!(
                "rtchat: {why}\n{}\n(rtchat --help lists the settings)",
                cli::USAGE
            );
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", Config::help());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("{}", cli::version());
            return ExitCode::SUCCESS;
        }
        Command::Healthcheck | Command::Serve => {}
    }
    if command == Command::Serve {
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect();
        for (name, closest) in cli::unknown_variables(names.iter().map(String::as_str)) {
            match closest {
                Some(known) => {
                    eprintln!("rtchat: warning: {name} is not a setting (did you mean {known}?)")
                }
                None => {
                    eprintln!("rtchat: warning: {name} is not a setting (rtchat --help lists them)")
                }
            }
        }
    }
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rtchat: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if command == Command::Healthcheck {
        return if cli::healthcheck(config.addr) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    if let Err(why) = rtchat::check_log_filter(&config.log_filter) {
        eprintln!(
            "rtchat: warning: RTCHAT_LOG {:?} is not a valid filter ({why}): logging at info",
            config.log_filter
        );
    }
    let log_format = rtchat::LogFormat::parse(&config.log_format).unwrap_or_else(|why| {
        eprintln!(
            "rtchat: warning: RTCHAT_LOG_FORMAT {:?} {why}: logging text",
            config.log_format
        );
        rtchat::LogFormat::Text
    });
    rtchat::init_logging_as(&config.log_filter, log_format);

    // The embedded default keeps its signing secret beside its database, so tokens survive a
    // restart; with an external database the operator must set JWT_SECRET (server.rs warns).
    if config.database_url.is_none() && config.jwt_secret.is_none() {
        match rtchat::load_or_create_secret(&config.data_dir.join("jwt_secret")) {
            Ok(secret) => config.jwt_secret = Some(Secret::new(secret)),
            Err(e) => {
                eprintln!("rtchat: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

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
    // The runtime's tasks and the embedded PostgreSQL end before the last line says so.
    drop(runtime);
    drop(_embedded);
    let uptime_secs = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0;
    match result {
        Ok(()) => {
            tracing::info!(uptime_secs, "stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            tracing::info!(uptime_secs, "stopped");
            eprintln!("rtchat: {e}");
            ExitCode::FAILURE
        }
    }
}

use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("aviary=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = aviary::cli::Cli::parse();
    let code = match aviary::commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<aviary::error::BadInput>().is_some() {
                eprintln!("{e}");
            } else {
                eprintln!("error: {e:#}");
            }
            aviary::cli::EXIT_BAD_INPUT
        }
    };
    aviary::machine::process::kill_all();
    std::process::exit(code);
}

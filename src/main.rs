use anyhow::Context;
use clap::Parser;
use orderhub::app::{self, App, SecretSource, Settings};
use orderhub::config::{Cli, Command, LogFormat, ServeArgs, TokenArgs};
use orderhub::{demo, graphql, store};
use orderhub_actors::domain::{Principal, RestaurantId, Role, TableId};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Schema) => {
            print!("{}", graphql::sdl());
            Ok(())
        }
        Some(Command::Token(args)) => token(args).await,
        Some(Command::Serve(args)) => serve(args).await,
        None => serve(cli.serve).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line an operator can act on, not a backtrace.
            eprintln!("orderhub: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,ractor=warn"));
    // Colours only for a person at a terminal, never into log files.
    let fmt = tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal());
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otlp::layer()?)
        .try_init()
        .context("cannot install the log subscriber")
}

/// Spans to an OpenTelemetry collector over OTLP/HTTP, when built with the `otlp` feature
/// and `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard OTEL_* variables apply).
#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry::trace::TracerProvider;
    use tracing_subscriber::Layer;

    pub fn layer<S>() -> anyhow::Result<Option<Box<dyn Layer<S> + Send + Sync>>>
    where
        S: tracing::Subscriber
            + for<'span> tracing_subscriber::registry::LookupSpan<'span>
            + Send
            + Sync,
    {
        if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name("orderhub")
            .build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("orderhub");
        Ok(Some(
            tracing_opentelemetry::layer().with_tracer(tracer).boxed(),
        ))
    }
}

#[cfg(not(feature = "otlp"))]
mod otlp {
    pub fn layer() -> anyhow::Result<Option<tracing_subscriber::layer::Identity>> {
        if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
            eprintln!("orderhub: OTEL_EXPORTER_OTLP_ENDPOINT is set, but this build has no OTLP exporter (build with --features otlp)");
        }
        Ok(None)
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::new(&args);
    init_logging(settings.log_format)?;
    let open_files = app::raise_open_files_limit();
    let max_connections = settings.server.max_connections;
    // Each connection is a descriptor; the database pools, Redis and the listener need some.
    if open_files < max_connections as u64 + 256 {
        tracing::warn!(
            open_files,
            max_connections,
            "the open-files limit is below ORDERHUB_MAX_CONNECTIONS; connections will be refused earlier (raise `ulimit -n`)"
        );
    }
    let app = App::build(&settings).await?;
    match app.secret_source {
        SecretSource::Configured => {}
        SecretSource::Stored => tracing::info!("using the token secret kept in the database"),
        SecretSource::Generated => tracing::info!(
            "no ORDERHUB_JWT_SECRET set: generated a random token secret and kept it in the database"
        ),
    }
    let listener = app::bind(settings.listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    if settings.demo && app.store.count_restaurants().await? == 0 {
        let demo = demo::seed(&app.registry)
            .await
            .context("cannot create the demo restaurant")?;
        print_demo(&app, &demo, &base);
    }
    tracing::info!(address = %base, database = %redacted(&settings.store.database_url), "orderhub is serving");
    app.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn print_demo(app: &App, demo: &demo::Demo, base: &str) {
    let ttl = Duration::from_secs(30 * 86_400);
    let restaurant = &demo.restaurant.id;
    let table = &demo.tables[0];
    let staff_token = app
        .tokens
        .issue("demo-staff", Role::Staff, Some(restaurant), None, ttl);
    let customer_token = app.tokens.issue(
        "demo-table-1",
        Role::Customer,
        Some(restaurant),
        Some(&table.id),
        ttl,
    );
    let manager_token =
        app.tokens
            .issue("demo-manager", Role::Manager, Some(restaurant), None, ttl);
    let admin_token = app.tokens.issue("demo-admin", Role::Admin, None, None, ttl);
    println!(
        "\nCreated the demo restaurant \"{name}\" ({restaurant}) with {tables} tables and {items} menu items.\n\
         \n  GraphiQL:        {base}/\n\
         \nOpen the two screens side by side:\n\
         \n  Kitchen display: {base}/kitchen#token={staff_token}\n\
         \n  Customer page ({table_name}): {base}/order#token={customer_token}\n\
         \nFor the restaurant's manager (menu, tables, settings):\n\
         \n  Manager screen:  {base}/manage#token={manager_token}\n\
         \n  staff token:     {staff_token}\n\
         \n  manager token:   {manager_token}\n\
         \n  customer token ({table_name}, table id {table_id}):\n                   {customer_token}\n\
         \n  admin token:     {admin_token}\n\
         \nOpen GraphiQL with the staff token filled in: {base}/#token={staff_token}&restaurant={restaurant}\n\
         Tokens are valid for 30 days; mint more with `orderhub token --role staff --restaurant {restaurant}`.\n",
        name = demo.restaurant.name,
        tables = demo.tables.len(),
        items = demo.menu.len(),
        table_name = table.name,
        table_id = table.id,
    );
}

async fn token(args: TokenArgs) -> anyhow::Result<()> {
    let restaurant = args
        .restaurant
        .as_deref()
        .map(|id| RestaurantId::parse(id).context("--restaurant is not a valid id"))
        .transpose()?;
    let table = args
        .table
        .as_deref()
        .map(|id| TableId::parse(id).context("--table is not a valid id"))
        .transpose()?;
    let principal = Principal::new(args.subject.clone(), args.role.into(), restaurant, table)?;
    // Nothing runs after this command: the store's samplers stop with the signal.
    let signal = orderhub_actors::shutdown::ShutdownSignal::new();
    let store = store::connect(&args.store.database_url, None, signal.shutdown()).await?;
    let (tokens, _) = app::token_secret(&args.store, store.as_ref()).await?;
    println!(
        "{}",
        tokens.issue(
            &principal.subject,
            principal.role,
            principal.restaurant_id(),
            principal.table_id(),
            args.ttl,
        )
    );
    Ok(())
}

/// The URL without its password, for logs.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

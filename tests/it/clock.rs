//! The restaurant's clock over the API: a time zone and a business-day start at creation and
//! through `updateRestaurant`, refusals that write nothing, and ticket numbers that go on
//! across a change of clock.

use orderhub_actors::domain::{BusinessDay, BusinessDayStart, TimeZone, Timestamp};
use serde_json::{json, Value};

use crate::support::{on_every_backend, Api, TestServer, PLACE};

on_every_backend!(
    restaurants_take_a_zone_and_a_business_day_start,
    bad_zones_and_start_times_are_refused_and_write_nothing,
    a_changed_clock_keeps_the_days_ticket_numbers,
);

const CLOCK: &str = "id name timeZone businessDayStartsAt";

const CREATE: &str = "mutation($i: CreateRestaurantInput!) { \
    createRestaurant(input: $i) { id name timeZone businessDayStartsAt } }";

const UPDATE: &str = "mutation($r: ID!, $i: RestaurantSettingsInput!) { \
    updateRestaurant(restaurantId: $r, input: $i) { id name timeZone businessDayStartsAt } }";

/// The restaurant's name, zone and start as the API reads them.
async fn clock_of(server: &Api, token: &str, restaurant: &str) -> Value {
    let read = server
        .gql(
            Some(token),
            &format!("query($r: ID!) {{ restaurant(id: $r) {{ {CLOCK} }} }}"),
            json!({"r": restaurant}),
        )
        .await;
    read.ok().at("restaurant").clone()
}

async fn restaurants_take_a_zone_and_a_business_day_start(server: &'static TestServer) {
    let admin = server.admin();
    let berlin = server
        .gql(
            Some(&admin),
            CREATE,
            json!({"i": {"name": "Brasserie", "currency": "EUR",
                         "timeZone": "europe/berlin", "businessDayStartsAt": "05:30"}}),
        )
        .await;
    let created = berlin.ok().at("createRestaurant").clone();
    assert_eq!(created["timeZone"], "Europe/Berlin", "{created}");
    assert_eq!(created["businessDayStartsAt"], "05:30");
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(clock_of(server, &admin, &id).await, created);

    // The defaults: Tokyo for yen, UTC for anything else; the day starts at 04:00.
    for (currency, zone) in [(None, "Asia/Tokyo"), (Some("USD"), "UTC")] {
        let made = server
            .gql(
                Some(&admin),
                CREATE,
                json!({"i": {"name": "Defaults", "currency": currency}}),
            )
            .await;
        assert_eq!(made.ok().str("createRestaurant.timeZone"), zone);
        assert_eq!(made.str("createRestaurant.businessDayStartsAt"), "04:00");
    }

    // Only the fields given change; the answer and later reads agree.
    let renamed = server
        .gql(
            Some(&admin),
            UPDATE,
            json!({"r": id, "i": {"name": "Brasserie du Coin"}}),
        )
        .await;
    let expected = json!({"id": id, "name": "Brasserie du Coin",
                          "timeZone": "Europe/Berlin", "businessDayStartsAt": "05:30"});
    assert_eq!(renamed.ok().at("updateRestaurant"), &expected);
    let moved = server
        .gql(
            Some(&admin),
            UPDATE,
            json!({"r": id, "i": {"timeZone": "America/New_York", "businessDayStartsAt": "03:00"}}),
        )
        .await;
    let expected = json!({"id": id, "name": "Brasserie du Coin",
                          "timeZone": "America/New_York", "businessDayStartsAt": "03:00"});
    assert_eq!(moved.ok().at("updateRestaurant"), &expected);
    assert_eq!(clock_of(server, &admin, &id).await, expected);
    let unchanged = server
        .gql(Some(&admin), UPDATE, json!({"r": id, "i": {}}))
        .await;
    assert_eq!(unchanged.ok().at("updateRestaurant"), &expected);

    let missing = server
        .gql(
            Some(&admin),
            UPDATE,
            json!({"r": "00000000-0000-7000-8000-000000000000", "i": {"timeZone": "UTC"}}),
        )
        .await;
    missing.expect_code("NOT_FOUND");
}

/// How many restaurants the store holds under `name`, read from the writer directly.
async fn restaurants_named(server: &TestServer, name: &str) -> i64 {
    const COUNT: &str = "SELECT COUNT(*) FROM restaurants WHERE name = $1";
    let url = &server.database_url;
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.expect("open SQLite");
        let count = sqlx::query_scalar(COUNT).bind(name).fetch_one(&pool).await;
        pool.close().await;
        count.expect("count restaurants")
    } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
        let pool = sqlx::MySqlPool::connect(&url.replacen("mariadb:", "mysql:", 1))
            .await
            .expect("connect to MariaDB");
        let count = sqlx::query_scalar(&COUNT.replace("$1", "?"))
            .bind(name)
            .fetch_one(&pool)
            .await;
        pool.close().await;
        count.expect("count restaurants")
    } else {
        let pool = sqlx::PgPool::connect(url)
            .await
            .expect("connect to PostgreSQL");
        let count = sqlx::query_scalar(COUNT).bind(name).fetch_one(&pool).await;
        pool.close().await;
        count.expect("count restaurants")
    }
}

async fn bad_zones_and_start_times_are_refused_and_write_nothing(server: &'static TestServer) {
    let f = server.fixture().await;
    let name = format!("Refused {}", uuid::Uuid::new_v4());
    let huge = "Asia/".repeat(20_000);
    let zones = [
        "",
        "Mars/Olympus_Mons",
        "../../etc/passwd",
        "/etc/localtime",
        "Etc/Unknown",
        "Asia/Tokyo\u{0}",
        "UTC+9",
        huge.as_str(),
    ];
    let starts = [
        "",
        "25:00",
        "4:00",
        "24:00",
        "04:00:00",
        "04:60",
        "noon",
        huge.as_str(),
    ];
    let before = clock_of(server, &f.admin, &f.restaurant).await;
    let mut refusals = Vec::new();
    for zone in zones {
        refusals.push((
            json!({"name": name, "timeZone": zone}),
            json!({"timeZone": zone}),
        ));
    }
    for start in starts {
        refusals.push((
            json!({"name": name, "businessDayStartsAt": start}),
            json!({"businessDayStartsAt": start}),
        ));
    }
    refusals.push((json!({"name": ""}), json!({"name": "  "})));
    // A valid field beside a refused one changes nothing either.
    refusals.push((
        json!({"name": name, "timeZone": "Asia/Tokyo", "businessDayStartsAt": "4:00"}),
        json!({"name": "Renamed", "timeZone": "Nowhere/Else"}),
    ));
    for (create, update) in refusals {
        let created = server
            .gql(Some(&f.admin), CREATE, json!({"i": create}))
            .await;
        created.expect_code("BAD_USER_INPUT");
        let message = created.0["errors"][0]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(
            message.len() < 300,
            "a short, clear message: {message:.300}"
        );
        let updated = server
            .gql(
                Some(&f.admin),
                UPDATE,
                json!({"r": f.restaurant, "i": update}),
            )
            .await;
        updated.expect_code("BAD_USER_INPUT");
    }
    assert_eq!(restaurants_named(server, &name).await, 0);
    assert_eq!(clock_of(server, &f.admin, &f.restaurant).await, before);
    // Each message names its field and the form it wants.
    let zone_refused = server
        .gql(
            Some(&f.admin),
            UPDATE,
            json!({"r": f.restaurant, "i": {"timeZone": "Mars/Base"}}),
        )
        .await;
    let message = zone_refused.0["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("timeZone") && message.contains("IANA"),
        "{message}"
    );
    let start_refused = server
        .gql(
            Some(&f.admin),
            UPDATE,
            json!({"r": f.restaurant, "i": {"businessDayStartsAt": "4:00"}}),
        )
        .await;
    let message = start_refused.0["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("businessDayStartsAt") && message.contains("HH:MM"),
        "{message}"
    );
}

/// A clock from `from` and one to move to, each given as (zone, start): moving from the first
/// to the second makes today's business day later, and neither turns its day in the next
/// minutes, so the test's orders all fall in one business day of each.
fn clocks_that_move_today_forward() -> ((&'static str, &'static str), (&'static str, &'static str))
{
    // Kiritimati is 25 hours ahead of Pago Pago: with the same start, its business day is
    // always a later date. Of the three pairs, at most one turns its day in a given hour.
    let now = Timestamp::now();
    let soon = Timestamp(now.millis() + 5 * 60_000);
    let day = |at, (zone, start): (&str, &str)| {
        let zone = TimeZone::parse(zone).expect("a known zone");
        let start = BusinessDayStart::parse(start).expect("HH:MM");
        BusinessDay::of(at, &zone, start)
    };
    for start in ["00:00", "04:00", "12:00"] {
        let (from, to) = (("Pacific/Pago_Pago", start), ("Pacific/Kiritimati", start));
        let steady = day(now, from) == day(soon, from) && day(now, to) == day(soon, to);
        if steady {
            assert!(day(now, to) > day(now, from));
            return (from, to);
        }
    }
    panic!("no pair of clocks holds its business day for five minutes");
}

async fn a_changed_clock_keeps_the_days_ticket_numbers(server: &'static TestServer) {
    let f = server.fixture().await;
    let ((from_zone, from_start), (to_zone, to_start)) = clocks_that_move_today_forward();
    server
        .gql(
            Some(&f.admin),
            UPDATE,
            json!({"r": f.restaurant, "i": {"timeZone": from_zone, "businessDayStartsAt": from_start}}),
        )
        .await
        .ok();
    let place = |key: &'static str| {
        let f = f.clone();
        async move {
            let placed = server
                .gql(
                    Some(&f.staff),
                    PLACE,
                    json!({"i": f.order_input(key, &[(0, 1)])}),
                )
                .await;
            placed.ok().int("placeOrder.number")
        }
    };
    assert_eq!(place("clock-1").await, 1);
    assert_eq!(place("clock-2").await, 2);
    // Today is a later date on the new clock; the night's count still goes on.
    let moved = server
        .gql(
            Some(&f.admin),
            UPDATE,
            json!({"r": f.restaurant, "i": {"timeZone": to_zone, "businessDayStartsAt": to_start}}),
        )
        .await;
    assert_eq!(moved.ok().str("updateRestaurant.timeZone"), to_zone);
    assert_eq!(place("clock-3").await, 3);
    // Moved back, today is the earlier date again, and still the same night's count.
    server
        .gql(
            Some(&f.admin),
            UPDATE,
            json!({"r": f.restaurant, "i": {"timeZone": from_zone}}),
        )
        .await
        .ok();
    assert_eq!(place("clock-4").await, 4);
    // A retried order is the same order, with its number, whatever the clock did since.
    assert_eq!(place("clock-2").await, 2);
}

/// What the previous release left in a database: only the first migration applied, and a
/// restaurant (with a table and a menu item) whose business day has #41 as its last ticket.
/// Returns the restaurant's id, its table's and its menu item's.
async fn previous_release_database(
    url: &str,
    backend: &str,
    ticket_day: BusinessDay,
) -> (String, String, String) {
    let first_only = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("previous-release-{backend}-{}", std::process::id()));
    std::fs::create_dir_all(&first_only).expect("a scratch dir");
    let initial = format!(
        "{}/migrations/{backend}/0001_initial.sql",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::copy(initial, first_only.join("0001_initial.sql")).expect("copy 0001");
    let migrator = sqlx::migrate::Migrator::new(first_only.as_path())
        .await
        .expect("the first migration");
    let (restaurant, table, item) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let now = Timestamp::now().millis();
    let statements = [
        "INSERT INTO restaurants (id, name, currency, utc_offset_minutes, last_seq, ticket_day, \
         last_ticket, created_at) VALUES ($1, 'Old Diner', 'USD', 0, 0, $2, 41, $3)",
        "INSERT INTO restaurant_tables (id, restaurant_id, name, created_at) \
         VALUES ($4, $1, 'Booth', $3)",
        "INSERT INTO menu_items (id, restaurant_id, name, price, available, created_at) \
         VALUES ($5, $1, 'Pancakes', 900, TRUE, $3)",
    ];
    macro_rules! seed {
        ($pool:expr) => {{
            let pool = $pool;
            migrator
                .run(&pool)
                .await
                .expect("migrate to the first schema");
            for statement in statements {
                sqlx::query(statement)
                    .bind(&restaurant)
                    .bind(ticket_day.0)
                    .bind(now)
                    .bind(&table)
                    .bind(&item)
                    .execute(&pool)
                    .await
                    .expect("seed the previous release's data");
            }
            pool.close().await;
        }};
    }
    if backend == "sqlite" {
        use std::str::FromStr;
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .expect("a SQLite URL")
            .create_if_missing(true);
        seed!(sqlx::SqlitePool::connect_with(options)
            .await
            .expect("open SQLite"));
    } else {
        seed!(sqlx::PgPool::connect(url)
            .await
            .expect("connect to PostgreSQL"));
    }
    (restaurant, table, item)
}

/// A restaurant from before zones existed comes out of the upgrade on UTC and 04:00, the
/// clock it kept, with its night's ticket count going on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restaurants_from_before_zones_keep_utc_and_their_ticket_count() {
    let utc = TimeZone::utc();
    let today = || BusinessDay::of(Timestamp::now(), &utc, BusinessDayStart::DEFAULT);
    for backend in ["sqlite", "postgres"] {
        let url = match backend {
            "sqlite" => crate::support::sqlite_url("previous-release"),
            _ => crate::support::postgres_url("orderhub_previous_release"),
        };
        let stored = today();
        let (restaurant, table, item) = previous_release_database(&url, backend, stored).await;
        let server = TestServer::start(&url, &[]);
        let admin = server.admin();
        let clock = clock_of(&server, &admin, &restaurant).await;
        assert_eq!(clock["timeZone"], "UTC", "{backend}: {clock}");
        assert_eq!(clock["businessDayStartsAt"], "04:00", "{backend}: {clock}");
        let placed = server
            .gql(
                Some(&admin),
                PLACE,
                json!({"i": {"restaurantId": restaurant, "tableId": table,
                             "items": [{"menuItemId": item, "quantity": 1}],
                             "idempotencyKey": "after-the-upgrade"}}),
            )
            .await;
        let number = placed.ok().int("placeOrder.number");
        // #42, unless the business day turned (04:00 UTC) while this test ran.
        let expected = if today() == stored { 42 } else { 1 };
        assert_eq!(number, expected, "{backend}");
    }
}

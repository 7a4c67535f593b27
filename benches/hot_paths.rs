//! The hot paths of a busy node, measured in-process with criterion:
//!
//! 1. one `restaurantEvents` event, from the bus to the encoded `next` frame of a subscriber,
//!    through the real schema (channel actor, subscription buffer, resolvers, JSON);
//! 2. one event fanned out by a restaurant's channel to 10,000 subscriptions;
//! 3. the domain rules for a 20-line order (validation, prices, total);
//! 4. verifying a token from an `Authorization` header.
//!
//! `cargo bench --bench hot_paths`; each benchmark takes a few seconds.

use async_graphql::futures_util::StreamExt;
use criterion::{criterion_group, criterion_main, Criterion};
use orderhub::auth::Tokens;
use orderhub::bus::LocalBus;
use orderhub::graphql::{self, Caller, Services, TableLinks};
use orderhub::store::routing::ReadRouting;
use orderhub_actors::channel::{ChannelConfig, ChannelRegistry, Filter};
use orderhub_actors::domain::{
    build_order, validate_menu_item, BusinessDayStart, Currency, Event, EventKind, LineRequest,
    MenuItem, NewMenuItem, PlaceOrderRequest, Principal, Restaurant, RestaurantId, Role, TableId,
    TimeZone, Timestamp,
};
use orderhub_actors::ports::{Bus, EventSink, SystemClock};
use orderhub_actors::restaurant::{Deps, RegistryConfig, RestaurantRegistry};
use orderhub_actors::shutdown::ShutdownSignal;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "hot-paths-bench-secret-0123456789abcdef";
const FANOUT: usize = 10_000;
const LINES: usize = 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn restaurant() -> Restaurant {
    Restaurant {
        id: RestaurantId::generate(),
        name: "Bench Kitchen".into(),
        currency: Currency::from_trusted("JPY".into()),
        time_zone: TimeZone::parse("Asia/Tokyo").expect("a known zone"),
        day_starts_at: BusinessDayStart::DEFAULT,
        tax: Default::default(),
    }
}

fn menu(restaurant: &Restaurant) -> Vec<MenuItem> {
    (0..LINES)
        .map(|i| {
            let new = NewMenuItem {
                name: format!("Dish {i}"),
                price: 500 + 10 * i as i64,
                ..NewMenuItem::default()
            };
            validate_menu_item(restaurant, new, i).expect("a valid item")
        })
        .collect()
}

fn request(restaurant: &Restaurant, menu: &[MenuItem], lines: usize) -> PlaceOrderRequest {
    PlaceOrderRequest {
        restaurant_id: restaurant.id.clone(),
        table_id: TableId::generate(),
        items: menu
            .iter()
            .take(lines)
            .map(|item| LineRequest {
                menu_item_id: item.id.clone(),
                quantity: 2,
                note: Some("no onions".into()),
                option_ids: Vec::new(),
            })
            .collect(),
        note: Some("t=1767225600123456789".into()),
        idempotency_key: "bench-order-1".into(),
        service_mode: Default::default(),
    }
}

/// An OrderPlaced event of a 3-line order, as a kitchen display receives it.
fn event(restaurant: &Restaurant, menu: &[MenuItem], seq: i64) -> Event {
    let order = build_order(
        &request(restaurant, menu, 3),
        restaurant,
        menu,
        seq,
        Timestamp::now(),
    )
    .expect("a valid order");
    Event {
        restaurant_id: restaurant.id.clone(),
        seq,
        at: Timestamp::now(),
        kind: EventKind::OrderPlaced { order },
    }
}

struct Node {
    /// Held for as long as the node is used.
    signal: ShutdownSignal,
    bus: Arc<LocalBus>,
    channels: ChannelRegistry,
    services: Services,
}

/// A node's channel and schema on a fresh SQLite file, with one restaurant and its menu.
async fn node(buffer: usize) -> (Node, Restaurant, Vec<MenuItem>) {
    let dir = std::env::temp_dir().join(format!("orderhub-hot-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let url = format!("sqlite://{}/bench-{buffer}.db", dir.display());
    // The store's samplers play no part in these benches: their signal is dropped at once.
    let store = orderhub::store::connect(&url, None, ShutdownSignal::new().shutdown())
        .await
        .expect("store");
    let bus = Arc::new(LocalBus::new());
    // Kept with the node: the registries' supervisors stop, and their actors, when it drops.
    let signal = ShutdownSignal::new();
    let channels = ChannelRegistry::new(
        store.clone(),
        bus.clone() as Arc<dyn Bus>,
        ChannelConfig {
            buffer,
            // Events here are published without being stored: no catch-up from the store.
            catch_up_every: Duration::from_secs(3600),
            ..ChannelConfig::default()
        },
        signal.shutdown(),
    );
    let registry = RestaurantRegistry::new(
        Deps {
            store: store.clone(),
            sink: bus.clone() as Arc<dyn EventSink>,
            clock: Arc::new(SystemClock),
        },
        RegistryConfig {
            idle_after: Duration::from_secs(3600),
            ..RegistryConfig::default()
        },
        signal.shutdown(),
    );
    let services = Services {
        store: store.clone(),
        registry,
        channels: channels.clone(),
        reads: Arc::new(ReadRouting::new()),
        table_links: TableLinks {
            tokens: Tokens::new(&[7u8; 32]).expect("a 32-byte secret"),
            ttl: Duration::from_secs(86_400),
        },
    };
    let restaurant = restaurant();
    store
        .create_restaurant(&restaurant)
        .await
        .expect("restaurant");
    let menu = menu(&restaurant);
    let node = Node {
        signal,
        bus,
        channels,
        services,
    };
    (node, restaurant, menu)
}

fn event_to_frame(c: &mut Criterion) {
    let rt = runtime();
    let (_signal, bus, menu, restaurant, mut stream) = rt.block_on(async {
        let (node, restaurant, menu) = node(256).await;
        let schema = graphql::build(Some(node.services));
        let staff = Principal::new(
            "bench".into(),
            Role::Staff,
            Some(restaurant.id.clone()),
            None,
        )
        .expect("principal");
        let request = async_graphql::Request::new(
            "subscription($r: ID!) { restaurantEvents(restaurantId: $r) { __typename seq at \
             ... on OrderPlaced { order { id number status tableId note total { amount currency } \
             items { name quantity } } } } }",
        )
        .variables(async_graphql::Variables::from_json(
            serde_json::json!({"r": restaurant.id.as_str()}),
        ))
        .data(Caller::Authenticated(staff));
        let stream = schema.execute_stream(request);
        (node.signal, node.bus, menu, restaurant, stream)
    });
    // The subscription joins its channel on its first poll; then events flow from seq 1.
    let idle = rt
        .block_on(async { tokio::time::timeout(Duration::from_millis(200), stream.next()).await });
    assert!(idle.is_err(), "no event before the first was published");
    let mut seq = 0;
    let first = loop {
        seq += 1;
        bus.publish(&event(&restaurant, &menu, seq));
        let next = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(50), stream.next()).await
        });
        if let Ok(Some(response)) = next {
            break response;
        }
    };
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    c.bench_function("event resolved and encoded for one subscriber", |b| {
        b.iter(|| {
            seq += 1;
            bus.publish(&event(&restaurant, &menu, seq));
            rt.block_on(async {
                let response = stream.next().await.expect("an event");
                let value = serde_json::to_value(&response).expect("encodes");
                serde_json::json!({"type": "next", "id": "1", "payload": value}).to_string()
            })
        })
    });
}

fn fan_out(c: &mut Criterion) {
    let rt = runtime();
    let (_signal, bus, restaurant, menu, mut subscriptions, _channels) = rt.block_on(async {
        let (node, restaurant, menu) = node(256).await;
        let mut subscriptions = Vec::with_capacity(FANOUT);
        for _ in 0..FANOUT {
            let joined = node
                .channels
                .join(&restaurant.id, Filter::All, None)
                .await
                .expect("joins");
            subscriptions.push(joined);
        }
        (
            node.signal,
            node.bus,
            restaurant,
            menu,
            subscriptions,
            node.channels,
        )
    });
    let mut seq = subscriptions[0].live_after;
    let mut group = c.benchmark_group("fan-out");
    group.sample_size(10);
    group.bench_function("one event to 10,000 subscriptions", |b| {
        b.iter(|| {
            seq += 1;
            bus.publish(&event(&restaurant, &menu, seq));
            rt.block_on(async {
                for subscription in &mut subscriptions {
                    let got = subscription.events.recv().await.expect("delivered");
                    assert_eq!(got.seq, seq);
                }
            })
        })
    });
    group.finish();
}

fn domain_rules(c: &mut Criterion) {
    let restaurant = restaurant();
    let menu = menu(&restaurant);
    let request = request(&restaurant, &menu, LINES);
    c.bench_function("a 20-line order validated and priced", |b| {
        b.iter(|| {
            build_order(
                &request,
                &restaurant,
                &menu,
                7,
                Timestamp(1_767_225_600_000),
            )
            .expect("valid")
        })
    });
}

fn tokens(c: &mut Criterion) {
    let tokens = Tokens::new(SECRET.as_bytes()).expect("secret");
    let restaurant = RestaurantId::generate();
    let token = tokens.issue(
        "bench",
        Role::Staff,
        Some(&restaurant),
        None,
        Duration::from_secs(3600),
    );
    let header = format!("Bearer {token}");
    c.bench_function("token verified from its header", |b| {
        b.iter(|| tokens.verify_header(&header).expect("valid"))
    });
}

criterion_group! {
    name = hot_paths;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = domain_rules, tokens, event_to_frame, fan_out
}
criterion_main!(hot_paths);

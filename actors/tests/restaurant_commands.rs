//! Each command of a RestaurantActor against in-memory ports: who may run it, what it writes,
//! and which event it publishes (none when it writes nothing).

mod common;

use std::fmt::Debug;
use std::time::Duration;

use common::{manager_of, seed, staff_of, RestaurantFixture as Fixture, NOON};
use orderhub_actors::domain::{
    DomainError, EventKind, LineRequest, MenuItem, MenuItemId, NewMenuItem, OrderId, OrderStatus,
    Principal, RestaurantId, RestaurantSettings, Role, StaffCall, Table, TableId, Timestamp,
};
use orderhub_actors::ports::{Freshness, Store};
use orderhub_actors::restaurant::{RegistryConfig, RestaurantMsg};
use orderhub_actors::CommandError;

async fn fixture() -> Fixture {
    Fixture::new(RegistryConfig::default()).await
}

/// The domain's refusal, failing the test on anything else.
fn refusal<T: Debug>(result: Result<T, CommandError>) -> DomainError {
    match result {
        Err(CommandError::Domain(error)) => error,
        other => panic!("expected a domain refusal, got {other:?}"),
    }
}

impl Fixture {
    async fn set_available(
        &self,
        by: &Principal,
        item: &MenuItemId,
        available: bool,
    ) -> DomainResult<MenuItem> {
        self.call(|reply| RestaurantMsg::SetAvailability {
            by: by.clone(),
            menu_item_id: item.clone(),
            available,
            reply,
        })
        .await
    }

    async fn call_staff(
        &self,
        by: &Principal,
        table: &TableId,
        message: Option<&str>,
    ) -> DomainResult<StaffCall> {
        self.call(|reply| RestaurantMsg::CallStaff {
            by: by.clone(),
            table_id: table.clone(),
            message: message.map(str::to_owned),
            reply,
        })
        .await
    }

    async fn create_table(&self, by: &Principal, name: &str) -> DomainResult<Table> {
        self.call(|reply| RestaurantMsg::CreateTable {
            by: by.clone(),
            name: name.into(),
            reply,
        })
        .await
    }

    async fn create_item(
        &self,
        by: &Principal,
        name: &str,
        price: i64,
        available: Option<bool>,
    ) -> DomainResult<MenuItem> {
        self.call(|reply| RestaurantMsg::CreateMenuItem {
            by: by.clone(),
            item: NewMenuItem {
                name: name.into(),
                price,
                available,
                ..Default::default()
            },
            reply,
        })
        .await
    }

    /// A second table of the seeded restaurant, created by an admin.
    async fn second_table(&self) -> Table {
        self.create_table(&self.admin(), "T2")
            .await
            .expect("create a second table")
    }

    /// Kinds of the committed events, in seq order.
    async fn event_kinds(&self) -> Vec<EventKind> {
        self.events().await.into_iter().map(|e| e.kind).collect()
    }
}

type DomainResult<T> = Result<T, CommandError>;

#[tokio::test(start_paused = true)]
async fn a_customer_cancels_its_own_order_while_placed_and_the_change_is_published() {
    let f = fixture().await;
    let placed = f.place(f.request("key-1", 1)).await.expect("place");
    f.clock.manual.advance(Duration::from_secs(60));

    let cancelled = f
        .cancel_as(&f.customer(), &placed.id, "  changed my mind ")
        .await
        .expect("cancel");

    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.cancel_reason.as_deref(), Some("changed my mind"));
    assert_eq!(cancelled.version, 2);
    assert_eq!(cancelled.updated_at, Timestamp(NOON.0 + 60_000));
    assert_eq!(f.orders().await, std::slice::from_ref(&cancelled));
    let kinds = f.event_kinds().await;
    assert_eq!(
        kinds[1],
        EventKind::OrderStatusChanged {
            order: cancelled,
            from: OrderStatus::Placed
        }
    );
    assert_eq!(f.published_seqs(), [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn once_accepted_only_staff_cancel_and_nobody_once_it_is_ready() {
    let f = fixture().await;
    let order = f.place(f.request("key-1", 1)).await.expect("place");
    f.advance(&order.id, OrderStatus::Accepted, None)
        .await
        .expect("accept");

    let by_customer = refusal(f.cancel_as(&f.customer(), &order.id, "too slow").await);
    assert!(
        matches!(by_customer, DomainError::Forbidden(_)),
        "{by_customer:?}"
    );
    assert_eq!(f.event_seqs().await, [1, 2], "a refused cancel was written");

    f.advance(&order.id, OrderStatus::Preparing, Some(2))
        .await
        .expect("prepare");
    let by_staff = f
        .cancel_as(&f.staff(), &order.id, "burnt")
        .await
        .expect("staff cancel while preparing");
    assert_eq!(
        (by_staff.status, by_staff.version),
        (OrderStatus::Cancelled, 4)
    );

    let other = f.place(f.request("key-2", 1)).await.expect("place");
    for to in [
        OrderStatus::Accepted,
        OrderStatus::Preparing,
        OrderStatus::Ready,
    ] {
        f.advance(&other.id, to, None).await.expect("advance");
    }
    assert_eq!(
        refusal(f.cancel_as(&f.staff(), &other.id, "too late").await),
        DomainError::InvalidTransition {
            from: OrderStatus::Ready,
            to: OrderStatus::Cancelled
        }
    );
    let stored = f.orders().await;
    assert_eq!(stored[0].status, OrderStatus::Ready);
    assert_eq!(stored[0].cancel_reason, None);
}

#[tokio::test(start_paused = true)]
async fn orders_of_other_tables_and_restaurants_are_not_found_rather_than_forbidden() {
    let f = fixture().await;
    let t2 = f.second_table().await;
    let order = f.place(f.request("key-1", 1)).await.expect("place");
    let neighbour = f.customer_at(&t2.id);
    let other_restaurant_staff = staff_of(&RestaurantId::generate());

    for by in [&neighbour, &other_restaurant_staff] {
        let cancel = refusal(f.cancel_as(by, &order.id, "not mine").await);
        assert_eq!(cancel, DomainError::NotFound("order"), "{by:?}");
        let advance = refusal(
            f.advance_as(by, &order.id, OrderStatus::Accepted, None)
                .await,
        );
        assert_eq!(advance, DomainError::NotFound("order"), "{by:?}");
    }
    let unknown = refusal(
        f.advance(&OrderId::generate(), OrderStatus::Accepted, None)
            .await,
    );
    assert_eq!(unknown, DomainError::NotFound("order"));

    assert_eq!(f.orders().await, [order]);
    assert_eq!(f.event_seqs().await, [1]);
}

#[tokio::test(start_paused = true)]
async fn a_customer_sees_its_order_but_may_not_advance_it() {
    let f = fixture().await;
    let order = f.place(f.request("key-1", 1)).await.expect("place");
    let refused = refusal(
        f.advance_as(&f.customer(), &order.id, OrderStatus::Accepted, None)
            .await,
    );
    assert_eq!(refused, DomainError::Forbidden("staff only".into()));
    assert_eq!(f.orders().await[0].status, OrderStatus::Placed);
}

#[tokio::test(start_paused = true)]
async fn availability_changes_are_published_and_a_sold_out_item_cannot_be_ordered() {
    let f = fixture().await;
    let item = &f.seeded.item;

    let sold_out = f
        .set_available(&f.staff(), &item.id, false)
        .await
        .expect("mark sold out");
    assert!(!sold_out.available);
    assert_eq!(
        f.event_kinds().await,
        [EventKind::MenuItemAvailabilityChanged {
            menu_item: sold_out.clone()
        }]
    );
    assert_eq!(f.published_seqs(), [1]);

    let refused = refusal(f.place(f.request("key-1", 1)).await);
    assert_eq!(refused, DomainError::SoldOut(item.id.clone()));

    // Nothing changes: no write, no event.
    let again = f
        .set_available(&f.staff(), &item.id, false)
        .await
        .expect("mark sold out again");
    assert_eq!(again, sold_out);
    assert_eq!(f.event_seqs().await, [1]);

    f.set_available(&f.staff(), &item.id, true)
        .await
        .expect("back on the menu");
    assert_eq!(f.event_seqs().await, [1, 2]);
    let order = f.place(f.request("key-1", 1)).await.expect("place");
    assert_eq!(order.number, 1, "the refused order took a ticket");
    assert!(f.store.menu(f.id(), Freshness::Recent).await.expect("menu")[0].available);
}

#[tokio::test(start_paused = true)]
async fn only_staff_change_availability_and_only_of_their_own_items() {
    let f = fixture().await;
    let elsewhere = seed(&f.store).await;

    let by_customer = refusal(
        f.set_available(&f.customer(), &f.seeded.item.id, false)
            .await,
    );
    assert_eq!(by_customer, DomainError::Forbidden("staff only".into()));
    let foreign = refusal(f.set_available(&f.staff(), &elsewhere.item.id, false).await);
    assert_eq!(foreign, DomainError::NotFound("menu item"));
    let unknown = refusal(
        f.set_available(&f.staff(), &MenuItemId::generate(), false)
            .await,
    );
    assert_eq!(unknown, DomainError::NotFound("menu item"));

    assert!(f.store.menu(f.id(), Freshness::Recent).await.expect("menu")[0].available);
    assert!(
        f.store
            .menu(elsewhere.id(), Freshness::Recent)
            .await
            .expect("menu")[0]
            .available
    );
    assert!(f.events().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_staff_call_is_stored_and_published_for_the_callers_own_table() {
    let f = fixture().await;
    let t2 = f.second_table().await;

    let call = f
        .call_staff(&f.customer(), &f.seeded.table.id, Some("water, please"))
        .await
        .expect("call staff");
    assert_eq!(call.table_id, f.seeded.table.id);
    assert_eq!(&call.restaurant_id, f.id());
    assert_eq!(call.message.as_deref(), Some("water, please"));
    assert_eq!(call.at, NOON);
    assert_eq!(
        f.event_kinds().await,
        [EventKind::StaffCalled { call: call.clone() }]
    );

    let other_table = refusal(f.call_staff(&f.customer(), &t2.id, None).await);
    assert!(
        matches!(other_table, DomainError::Forbidden(_)),
        "{other_table:?}"
    );
    let unknown = refusal(
        f.call_staff(&f.customer(), &TableId::generate(), None)
            .await,
    );
    assert_eq!(unknown, DomainError::NotFound("table"));
    let bell = refusal(
        f.call_staff(&f.customer(), &f.seeded.table.id, Some("ring\u{7}"))
            .await,
    );
    assert!(matches!(bell, DomainError::BadInput(_)), "{bell:?}");
    let outsider = Principal::new(
        "guest".into(),
        Role::Customer,
        Some(RestaurantId::generate()),
        Some(f.seeded.table.id.clone()),
    )
    .expect("a customer principal");
    let foreign = refusal(f.call_staff(&outsider, &f.seeded.table.id, None).await);
    assert!(matches!(foreign, DomainError::Forbidden(_)), "{foreign:?}");
    assert_eq!(f.event_seqs().await, [1], "a refused call was written");

    // Staff may call for any table of theirs.
    f.call_staff(&f.staff(), &t2.id, None)
        .await
        .expect("staff call");
    assert_eq!(f.published_seqs(), [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn admins_create_tables_and_menu_items_that_can_be_ordered_at_once() {
    let f = fixture().await;
    let table = f
        .create_table(&f.admin(), "  Terrace 2 ")
        .await
        .expect("create a table");
    assert_eq!(table.name, "Terrace 2");
    assert_eq!(&table.restaurant_id, f.id());
    let gyoza = f
        .create_item(&f.admin(), " Gyoza ", 450, None)
        .await
        .expect("create an item");
    assert_eq!(gyoza.name, "Gyoza");
    assert_eq!(gyoza.price.amount, 450);
    assert_eq!(gyoza.price.currency, f.seeded.restaurant.currency);
    assert!(gyoza.available, "items are available unless told otherwise");
    let hidden = f
        .create_item(&f.admin(), "Special", 2000, Some(false))
        .await
        .expect("create an unavailable item");
    assert!(!hidden.available);

    assert!(f
        .store
        .tables(f.id(), Freshness::Recent)
        .await
        .expect("tables")
        .contains(&table));
    assert_eq!(
        f.store.menu(f.id(), Freshness::Recent).await.expect("menu"),
        [f.seeded.item.clone(), gyoza.clone(), hidden.clone()]
    );
    // A new table is no event; a new menu item is one, for the screens showing the menu.
    let created: Vec<EventKind> = f.events().await.into_iter().map(|e| e.kind).collect();
    assert_eq!(
        created,
        [
            EventKind::MenuItemChanged {
                menu_item: gyoza.clone()
            },
            EventKind::MenuItemChanged {
                menu_item: hidden.clone()
            }
        ]
    );

    let mut request = f.request("key-1", 2);
    request.table_id = table.id.clone();
    request.items = vec![LineRequest {
        menu_item_id: gyoza.id.clone(),
        quantity: 2,
        note: None,
        option_ids: Vec::new(),
    }];
    let order = f
        .place_as(&f.customer_at(&table.id), request)
        .await
        .expect("order the new item at the new table");
    assert_eq!(order.total.amount, 900);
}

#[tokio::test(start_paused = true)]
async fn setup_commands_are_for_managers_and_admins_and_check_their_input() {
    let f = fixture().await;
    let staff = f.staff();
    let elsewhere = manager_of(&RestaurantId::generate());
    let managers_only = DomainError::Forbidden("manager or admin only".into());
    let not_here = DomainError::Forbidden("this token is not for that restaurant".into());
    assert_eq!(refusal(f.create_table(&staff, "T9").await), managers_only);
    assert_eq!(
        refusal(f.create_item(&staff, "Tea", 100, None).await),
        managers_only
    );
    assert_eq!(refusal(f.create_table(&elsewhere, "T9").await), not_here);
    assert_eq!(
        refusal(f.create_item(&elsewhere, "Tea", 100, None).await),
        not_here
    );
    let blank = refusal(f.create_table(&f.admin(), "   ").await);
    assert!(matches!(blank, DomainError::BadInput(_)), "{blank:?}");
    let negative = refusal(f.create_item(&f.admin(), "Tea", -1, None).await);
    assert!(matches!(negative, DomainError::BadInput(_)), "{negative:?}");

    assert_eq!(
        f.store
            .tables(f.id(), Freshness::Recent)
            .await
            .expect("tables"),
        std::slice::from_ref(&f.seeded.table)
    );
    assert_eq!(
        f.store.menu(f.id(), Freshness::Recent).await.expect("menu"),
        std::slice::from_ref(&f.seeded.item)
    );

    let manager = manager_of(f.id());
    let table = f
        .create_table(&manager, "T9")
        .await
        .expect("a manager adds a table");
    let item = f
        .create_item(&manager, "Tea", 100, None)
        .await
        .expect("a manager adds a menu item");
    assert_eq!((table.name.as_str(), item.name.as_str()), ("T9", "Tea"));
}

#[tokio::test(start_paused = true)]
async fn an_order_refused_for_its_table_or_items_writes_nothing_and_takes_no_ticket() {
    let f = fixture().await;
    let t2 = f.second_table().await;

    let mut other_table = f.request("key-1", 1);
    other_table.table_id = t2.id.clone();
    let refused = refusal(f.place(other_table).await);
    assert_eq!(
        refused,
        DomainError::Forbidden("this token is not for that table".into())
    );

    let ghost = TableId::generate();
    let mut unknown_table = f.request("key-2", 1);
    unknown_table.table_id = ghost.clone();
    let refused = refusal(f.place_as(&f.customer_at(&ghost), unknown_table).await);
    assert_eq!(refused, DomainError::NotFound("table"));

    let mut unknown_item = f.request("key-3", 1);
    unknown_item.items[0].menu_item_id = MenuItemId::generate();
    let refused = refusal(f.place(unknown_item).await);
    assert!(matches!(refused, DomainError::BadInput(_)), "{refused:?}");

    let refused = refusal(f.place(f.request("key-4", 0)).await);
    assert!(matches!(refused, DomainError::BadInput(_)), "{refused:?}");

    assert!(f.orders().await.is_empty());
    assert!(f.events().await.is_empty());
    let order = f.place(f.request("key-5", 1)).await.expect("place");
    assert_eq!(order.number, 1);
}

#[tokio::test(start_paused = true)]
async fn a_restaurant_the_store_does_not_know_is_not_found() {
    let f = fixture().await;
    let unknown = RestaurantId::generate();
    let admin = f.admin();
    let result = f
        .registry
        .call(&unknown, |reply| RestaurantMsg::CreateTable {
            by: admin.clone(),
            name: "T1".into(),
            reply,
        })
        .await;
    assert_eq!(refusal(result), DomainError::NotFound("restaurant"));
}

#[tokio::test(start_paused = true)]
async fn update_restaurant_changes_the_clock_and_keeps_the_nights_tickets() {
    const HOUR: i64 = 3_600_000;
    let f = &fixture().await;
    let midnight = NOON.millis() - 12 * HOUR;
    // 01:00 UTC: before 04:00, still the previous business day in UTC, where the seed is.
    f.clock.manual.set(Timestamp(midnight + HOUR));
    let number =
        |key: &'static str| async move { f.place(f.request(key, 1)).await.expect("place").number };
    assert_eq!(number("night-1").await, 1);
    assert_eq!(number("night-2").await, 2);
    let events = f.event_seqs().await;

    let update = |by: Principal, settings: RestaurantSettings| async move {
        f.call(|reply| RestaurantMsg::UpdateRestaurant {
            by: by.clone(),
            settings: settings.clone(),
            reply,
        })
        .await
    };
    let to_tokyo = RestaurantSettings {
        time_zone: Some("Asia/Tokyo".into()),
        ..RestaurantSettings::default()
    };
    for by in [f.staff(), f.customer()] {
        let refused = refusal(update(by, to_tokyo.clone()).await);
        assert!(matches!(refused, DomainError::Forbidden(_)), "{refused:?}");
    }
    for bad in [
        RestaurantSettings {
            time_zone: Some("../../etc/passwd".into()),
            ..RestaurantSettings::default()
        },
        RestaurantSettings {
            name: Some("Renamed".into()),
            business_day_starts_at: Some("25:00".into()),
            ..RestaurantSettings::default()
        },
    ] {
        let refused = refusal(update(f.admin(), bad).await);
        assert!(matches!(refused, DomainError::BadInput(_)), "{refused:?}");
    }
    let stored = f
        .store
        .restaurant(f.id(), Freshness::Recent)
        .await
        .expect("read");
    assert_eq!(stored.as_ref(), Some(&f.seeded.restaurant));

    // 10:00 in Tokyo: there today is already the next date; tonight's count goes on.
    let moved = update(f.admin(), to_tokyo).await.expect("update");
    assert_eq!(moved.time_zone.name(), "Asia/Tokyo");
    assert_eq!(moved.name, f.seeded.restaurant.name);
    let stored = f
        .store
        .restaurant(f.id(), Freshness::Recent)
        .await
        .expect("read");
    assert_eq!(stored, Some(moved));
    assert_eq!(
        f.event_seqs().await,
        events,
        "no event for a settings change yet"
    );
    assert_eq!(number("night-3").await, 3);
    // 04:00 UTC is lunch in Tokyo: still the same business day there.
    f.clock.manual.set(Timestamp(midnight + 4 * HOUR));
    assert_eq!(number("night-4").await, 4);
    // 19:00 UTC is 04:00 the next morning in Tokyo: the count restarts.
    f.clock.manual.set(Timestamp(midnight + 19 * HOUR));
    assert_eq!(number("next-day-1").await, 1);
}

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
// Tokio's clock, which tests can pause and move; the same as std's otherwise.
use tokio::time::Instant;

use super::Deps;
use crate::domain::{
    advance, build_order, cancel, fingerprint, next_ticket, ticket_day_after_change,
    validate_request, validate_table_name, CancelRule, DomainError, EventKind, MenuItem,
    MenuItemId, MenuItemUpdate, NewMenuItem, OptionId, Order, OrderId, OrderStatus,
    PlaceOrderRequest, Principal, Restaurant, RestaurantSettings, SettingsChange, StaffCall, Table,
    TableId, TaxSettingsChange,
};
use crate::ports::{Lookup, RestaurantTx};
use crate::{CommandError, StoreError};

pub type Reply<T> = RpcReplyPort<Result<T, CommandError>>;

/// Every command that changes a restaurant. Each carries who asked, so the actor applies the
/// access rules against the state it has locked.
pub enum RestaurantMsg {
    PlaceOrder {
        by: Principal,
        request: PlaceOrderRequest,
        reply: Reply<Order>,
    },
    AdvanceOrder {
        by: Principal,
        order_id: OrderId,
        to: OrderStatus,
        expected_version: Option<i64>,
        reply: Reply<Order>,
    },
    CancelOrder {
        by: Principal,
        order_id: OrderId,
        reason: String,
        reply: Reply<Order>,
    },
    SetAvailability {
        by: Principal,
        menu_item_id: MenuItemId,
        available: bool,
        reply: Reply<MenuItem>,
    },
    CallStaff {
        by: Principal,
        table_id: TableId,
        message: Option<String>,
        reply: Reply<StaffCall>,
    },
    CreateTable {
        by: Principal,
        name: String,
        reply: Reply<Table>,
    },
    CreateMenuItem {
        by: Principal,
        item: NewMenuItem,
        reply: Reply<MenuItem>,
    },
    /// Changes the given settings; the business day in progress keeps its ticket count.
    UpdateRestaurant {
        by: Principal,
        settings: RestaurantSettings,
        reply: Reply<Restaurant>,
    },
    UpdateMenuItem {
        by: Principal,
        menu_item_id: MenuItemId,
        update: MenuItemUpdate,
        expected_version: Option<i64>,
        reply: Reply<MenuItem>,
    },
    ArchiveMenuItem {
        by: Principal,
        menu_item_id: MenuItemId,
        reply: Reply<MenuItem>,
    },
    SetOptionAvailability {
        by: Principal,
        option_id: OptionId,
        available: bool,
        reply: Reply<MenuItem>,
    },
    SetTaxSettings {
        by: Principal,
        change: TaxSettingsChange,
        reply: Reply<Restaurant>,
    },
}

/// A command in the actor's mailbox, holding its place in the restaurant's bounded command
/// queue until it has been handled (or dropped with the mailbox): ractor's mailboxes are
/// unbounded, so the bound is this place (see `RestaurantRegistry::call`).
pub struct Queued {
    message: RestaurantMsg,
    _place: OwnedSemaphorePermit,
}

impl Queued {
    pub(crate) fn new(message: RestaurantMsg, place: OwnedSemaphorePermit) -> Self {
        Self {
            message,
            _place: place,
        }
    }
}

/// Executes one restaurant's commands one at a time: validate with the domain, write the change
/// and its event in one transaction, then publish the event.
pub struct RestaurantActor;

pub struct RestaurantState {
    pub(super) restaurant_id: crate::domain::RestaurantId,
    deps: Deps,
    /// Set when the store was found unavailable: until then commands fail at once instead of
    /// each waiting out a connection timeout in this actor's queue. The first command after
    /// it probes the store again.
    store_down_until: Option<Instant>,
}

/// How long commands fail fast after the store was found unavailable.
const STORE_RETRY_AFTER: Duration = Duration::from_millis(500);

impl Actor for RestaurantActor {
    type Msg = Queued;
    type State = RestaurantState;
    type Arguments = (crate::domain::RestaurantId, Deps);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (restaurant_id, deps): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RestaurantState {
            restaurant_id,
            deps,
            store_down_until: None,
        })
    }

    // Failures go back to the caller; returning Err here would stop the actor for everyone.
    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        Queued { message, _place }: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let store_unavailable = match message {
            RestaurantMsg::PlaceOrder { by, request, reply } => {
                answer(reply, state.place_order(&by, request).await)
            }
            RestaurantMsg::AdvanceOrder {
                by,
                order_id,
                to,
                expected_version,
                reply,
            } => answer(
                reply,
                state
                    .advance_order(&by, &order_id, to, expected_version)
                    .await,
            ),
            RestaurantMsg::CancelOrder {
                by,
                order_id,
                reason,
                reply,
            } => answer(reply, state.cancel_order(&by, &order_id, &reason).await),
            RestaurantMsg::SetAvailability {
                by,
                menu_item_id,
                available,
                reply,
            } => answer(
                reply,
                state.set_availability(&by, &menu_item_id, available).await,
            ),
            RestaurantMsg::CallStaff {
                by,
                table_id,
                message,
                reply,
            } => answer(reply, state.call_staff(&by, &table_id, message).await),
            RestaurantMsg::CreateTable { by, name, reply } => {
                answer(reply, state.create_table(&by, &name).await)
            }
            RestaurantMsg::CreateMenuItem { by, item, reply } => {
                answer(reply, state.create_menu_item(&by, item).await)
            }
            RestaurantMsg::UpdateRestaurant {
                by,
                settings,
                reply,
            } => answer(reply, state.update_restaurant(&by, settings).await),
            RestaurantMsg::UpdateMenuItem {
                by,
                menu_item_id,
                update,
                expected_version,
                reply,
            } => answer(
                reply,
                state
                    .update_menu_item(&by, &menu_item_id, update, expected_version)
                    .await,
            ),
            RestaurantMsg::ArchiveMenuItem {
                by,
                menu_item_id,
                reply,
            } => answer(reply, state.archive_menu_item(&by, &menu_item_id).await),
            RestaurantMsg::SetOptionAvailability {
                by,
                option_id,
                available,
                reply,
            } => answer(
                reply,
                state
                    .set_option_availability(&by, &option_id, available)
                    .await,
            ),
            RestaurantMsg::SetTaxSettings { by, change, reply } => {
                answer(reply, state.set_tax_settings(&by, change).await)
            }
        };
        let now = Instant::now();
        // While the pause lasts no command reaches the store (see `begin`): no outcome then, not
        // even a refusal of the command's content, says that the store is back.
        if state.store_down_until.is_none_or(|until| now >= until) {
            // Pause again if this command found the store away.
            state.store_down_until = store_unavailable.then(|| now + STORE_RETRY_AFTER);
        }
        Ok(())
    }
}

/// Sends the outcome; says whether the store was unavailable.
fn answer<T: Send + 'static>(reply: Reply<T>, result: Result<T, CommandError>) -> bool {
    let store_unavailable = matches!(result, Err(CommandError::Store(StoreError::Unavailable(_))));
    if let Err(error) = &result {
        tracing::debug!(%error, "command refused");
    }
    // The caller may have timed out and gone; the outcome is in the store either way.
    let _ = reply.send(result);
    store_unavailable
}

impl RestaurantState {
    pub(super) async fn begin(
        &self,
        lookup: Lookup<'_>,
    ) -> Result<Box<dyn RestaurantTx>, CommandError> {
        if self
            .store_down_until
            .is_some_and(|until| Instant::now() < until)
        {
            return Err(StoreError::Unavailable(
                "the store was unavailable moments ago; not tried again yet".into(),
            )
            .into());
        }
        self.deps
            .store
            .begin(&self.restaurant_id, lookup)
            .await?
            .ok_or(CommandError::not_found("restaurant"))
    }

    /// Commits, then hands the event to the bus. Publishing after commit means a subscriber
    /// never sees an event that was rolled back.
    pub(super) async fn commit_and_publish(
        &self,
        mut tx: Box<dyn RestaurantTx>,
        kind: EventKind,
    ) -> Result<(), CommandError> {
        let event = tx.append_event(kind, self.deps.clock.now()).await?;
        #[cfg(feature = "fault-injection")]
        crate::faults::hook(crate::faults::Target::Restaurant, &self.restaurant_id);
        tx.commit().await?;
        self.deps.sink.publish(&event);
        Ok(())
    }

    /// Begins with the order looked up; one the principal may not see is NOT_FOUND, never
    /// FORBIDDEN, so that nobody learns which orders exist at other tables.
    async fn begin_with_order(
        &self,
        by: &Principal,
        order_id: &OrderId,
    ) -> Result<(Box<dyn RestaurantTx>, Order), CommandError> {
        let tx = self
            .begin(Lookup {
                order: Some(order_id),
                ..Lookup::NOTHING
            })
            .await?;
        match &tx.found().order {
            Some(order) if by.may_see_order(order) => {
                let order = order.clone();
                Ok((tx, order))
            }
            _ => Err(CommandError::not_found("order")),
        }
    }

    async fn place_order(
        &self,
        by: &Principal,
        request: PlaceOrderRequest,
    ) -> Result<Order, CommandError> {
        by.may_act_for_table(&request.restaurant_id, &request.table_id)?;
        let request = &validate_request(request)?;
        let now = self.deps.clock.now();
        let wanted: Vec<MenuItemId> = request
            .items
            .iter()
            .map(|line| line.menu_item_id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut tx = self
            .begin(Lookup {
                idempotency_key: Some(&request.idempotency_key),
                table: Some(&request.table_id),
                menu_items: &wanted,
                whole_menu: false,
                order: None,
            })
            .await?;
        let request_fingerprint = fingerprint(request);
        if let Some((earlier, order_id)) = tx.found().by_key.clone() {
            if earlier != request_fingerprint {
                return Err(DomainError::Conflict(
                    "idempotencyKey was already used for a different order".into(),
                )
                .into());
            }
            // A retry: answer with the order placed the first time and write nothing.
            return tx.order(&order_id).await?.ok_or_else(|| {
                StoreError::Internal(format!("order {order_id} of an idempotency key is missing"))
                    .into()
            });
        }
        if tx.found().table.is_none() {
            return Err(CommandError::not_found("table"));
        }
        let menu = &tx.found().menu_items;
        let today = tx.restaurant().business_day(now);
        let counters = tx.counters();
        let (day, number) = next_ticket(counters.ticket_day, counters.last_ticket, today);
        let order = build_order(request, tx.restaurant(), menu, number, now)?;
        tx.insert_order(&order, &request.idempotency_key, &request_fingerprint)
            .await?;
        tx.set_ticket(day, number).await?;
        self.commit_and_publish(
            tx,
            EventKind::OrderPlaced {
                order: order.clone(),
            },
        )
        .await?;
        Ok(order)
    }

    async fn advance_order(
        &self,
        by: &Principal,
        order_id: &OrderId,
        to: OrderStatus,
        expected_version: Option<i64>,
    ) -> Result<Order, CommandError> {
        let (mut tx, order) = self.begin_with_order(by, order_id).await?;
        by.may_operate(&order.restaurant_id)?;
        let advanced = advance(&order, to, expected_version, self.deps.clock.now())?;
        tx.update_order(&advanced).await?;
        let kind = EventKind::OrderStatusChanged {
            order: advanced.clone(),
            from: order.status,
        };
        self.commit_and_publish(tx, kind).await?;
        Ok(advanced)
    }

    async fn cancel_order(
        &self,
        by: &Principal,
        order_id: &OrderId,
        reason: &str,
    ) -> Result<Order, CommandError> {
        let (mut tx, order) = self.begin_with_order(by, order_id).await?;
        let cancelled = cancel(
            &order,
            CancelRule::for_principal(by),
            reason,
            self.deps.clock.now(),
        )?;
        tx.update_order(&cancelled).await?;
        let kind = EventKind::OrderStatusChanged {
            order: cancelled.clone(),
            from: order.status,
        };
        self.commit_and_publish(tx, kind).await?;
        Ok(cancelled)
    }

    async fn set_availability(
        &self,
        by: &Principal,
        menu_item_id: &MenuItemId,
        available: bool,
    ) -> Result<MenuItem, CommandError> {
        by.may_operate(&self.restaurant_id)?;
        let mut tx = self
            .begin(Lookup {
                menu_items: std::slice::from_ref(menu_item_id),
                ..Lookup::NOTHING
            })
            .await?;
        let mut item = tx
            .found()
            .menu_items
            .first()
            .cloned()
            .ok_or(CommandError::not_found("menu item"))?;
        if item.archived {
            return Err(CommandError::not_found("menu item"));
        }
        if item.available == available {
            return Ok(item); // nothing changed: no write, no event
        }
        item.available = available;
        item.version += 1;
        tx.update_menu_item(&item).await?;
        let kind = EventKind::MenuItemAvailabilityChanged {
            menu_item: item.clone(),
        };
        self.commit_and_publish(tx, kind).await?;
        Ok(item)
    }

    async fn call_staff(
        &self,
        by: &Principal,
        table_id: &TableId,
        message: Option<String>,
    ) -> Result<StaffCall, CommandError> {
        by.may_view_restaurant(&self.restaurant_id)?;
        let mut tx = self
            .begin(Lookup {
                table: Some(table_id),
                ..Lookup::NOTHING
            })
            .await?;
        let table = tx
            .found()
            .table
            .clone()
            .ok_or(CommandError::not_found("table"))?;
        by.may_act_for_table(&table.restaurant_id, &table.id)?;
        let call = StaffCall::new(&table, message, self.deps.clock.now())?;
        tx.insert_staff_call(&call).await?;
        self.commit_and_publish(tx, EventKind::StaffCalled { call: call.clone() })
            .await?;
        Ok(call)
    }

    async fn create_table(&self, by: &Principal, name: &str) -> Result<Table, CommandError> {
        by.may_manage(&self.restaurant_id)?;
        let name = validate_table_name(name)?;
        let mut tx = self.begin(Lookup::NOTHING).await?;
        let table = Table {
            id: TableId::generate(),
            restaurant_id: self.restaurant_id.clone(),
            name,
        };
        tx.insert_table(&table).await?;
        tx.commit().await?;
        Ok(table)
    }

    /// Changes the given settings under the restaurant's lock, so no order is numbered
    /// between reading the clock and writing it. If the ticket count belongs to the business
    /// day in progress, it is renamed to today's day under the new clock and goes on
    /// (`ticket_day_after_change`): the count restarts at the next start in the new setting,
    /// never twice in one night.
    async fn update_restaurant(
        &self,
        by: &Principal,
        settings: RestaurantSettings,
    ) -> Result<Restaurant, CommandError> {
        by.may_manage(&self.restaurant_id)?;
        let change = SettingsChange::validate(settings)?;
        let now = self.deps.clock.now();
        let mut tx = self.begin(Lookup::NOTHING).await?;
        let before = tx.restaurant().clone();
        let after = change.apply(&before);
        if after == before {
            return Ok(after); // nothing changed: no write
        }
        let counters = tx.counters().clone();
        let day = ticket_day_after_change(
            counters.ticket_day,
            before.business_day(now),
            after.business_day(now),
        );
        tx.update_restaurant(&after).await?;
        if day != counters.ticket_day {
            tx.set_ticket(day, counters.last_ticket).await?;
        }
        tx.commit().await?;
        Ok(after)
    }
}

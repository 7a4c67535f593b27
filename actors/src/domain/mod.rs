//! Pure domain types and rules. Nothing here performs I/O.

mod access;
mod event;
mod ids;
mod locale;
mod menu;
mod money;
mod options;
mod order;
mod tax;
pub mod text;
mod time;

pub use access::{Principal, PrincipalError, Role};
pub use event::{Event, EventKind};
pub use ids::{MenuItemId, OrderId, RestaurantId, StaffCallId, TableId};
pub use locale::{pick, Locale, NameTranslation, Translation, MAX_TRANSLATIONS};
pub use menu::{
    reorder, validate_menu_item, validate_restaurant, validate_table_name, Allergen, MenuItem,
    MenuItemUpdate, NewMenuItem, NewRestaurant, Restaurant, RestaurantSettings, SettingsChange,
    StaffCall, Table, TaxSettingsChange, DEFAULT_CURRENCY, DEFAULT_PREP_SECONDS,
    MAX_DESCRIPTION_CHARS, MAX_ITEM_NAME_CHARS, MAX_PREP_SECONDS, MAX_RESTAURANT_NAME,
};
pub use money::{Currency, Money};
pub use options::{
    check_option_groups, choose, ChosenOption, MenuOption, NewMenuOption, NewOptionGroup,
    OptionGroup, OptionGroupId, OptionId, MAX_GROUPS, MAX_OPTIONS_PER_GROUP,
};
pub use order::{
    advance, build_order, cancel, fingerprint, validate_request, CancelRule, LineRequest, Order,
    OrderItem, OrderItemId, OrderStatus, PlaceOrderRequest, MAX_LINES, MAX_OPTIONS_PER_LINE,
    MAX_QUANTITY,
};
pub use tax::{
    tax_lines, BasisPoints, ServiceMode, TaxCategory, TaxLine, TaxRounding, TaxRule, TaxRules,
    TaxSettings, TaxSummary,
};
pub use text::{check_name, check_text};
pub use time::{
    next_ticket, ticket_day_after_change, tzdb_version, BusinessDay, BusinessDayStart, TimeZone,
    Timestamp,
};

/// Why a command was refused. Each variant maps to one public error code in the adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadInput(String),
    #[error("menu item {0} is sold out")]
    SoldOut(MenuItemId),
    #[error("option {0} is sold out")]
    OptionSoldOut(OptionId),
    #[error("an order cannot move from {from} to {to}")]
    InvalidTransition { from: OrderStatus, to: OrderStatus },
    #[error("{0}")]
    Conflict(String),
}

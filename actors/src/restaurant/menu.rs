//! The restaurant actor's commands on its menu and tax settings. Each runs under the
//! restaurant's lock like every command, and each change is an event in the restaurant's log:
//! `MenuItemChanged` for an item, `RestaurantChanged` for the tax settings.

use super::actor::RestaurantState;
use crate::domain::{
    reorder, validate_menu_item, DomainError, EventKind, MenuItem, MenuItemId, MenuItemUpdate,
    NewMenuItem, OptionId, Principal, Restaurant, TaxSettingsChange,
};
use crate::ports::{Found, Lookup};
use crate::CommandError;

impl RestaurantState {
    /// Manager or admin: the item goes last on the menu.
    pub(super) async fn create_menu_item(
        &self,
        by: &Principal,
        input: NewMenuItem,
    ) -> Result<MenuItem, CommandError> {
        by.may_manage(&self.restaurant_id)?;
        let mut tx = self.begin(Lookup::WHOLE_MENU).await?;
        let item = validate_menu_item(tx.restaurant(), input, tx.found().menu_items.len())?;
        tx.insert_menu_item(&item).await?;
        let kind = EventKind::MenuItemChanged {
            menu_item: item.clone(),
        };
        self.commit_and_publish(tx, kind).await?;
        Ok(item)
    }

    /// Manager or admin. With `expected_version`, CONFLICT if the item changed since. A new
    /// position renumbers the menu; the items that move only for that are written, not
    /// changed (their version stays).
    pub(super) async fn update_menu_item(
        &self,
        by: &Principal,
        id: &MenuItemId,
        update: MenuItemUpdate,
        expected_version: Option<i64>,
    ) -> Result<MenuItem, CommandError> {
        by.may_manage(&self.restaurant_id)?;
        let position = update.position;
        let lookup = match position {
            Some(_) => Lookup::WHOLE_MENU,
            None => Lookup {
                menu_items: std::slice::from_ref(id),
                ..Lookup::NOTHING
            },
        };
        let mut tx = self.begin(lookup).await?;
        let item = on_menu(tx.found(), id)?;
        check_version(&item, expected_version)?;
        let mut changed = update.apply(&item)?;
        let mut moved = Vec::new();
        if let Some(position) = position {
            let mut menu = tx.found().menu_items.clone();
            menu.sort_by_key(|m| m.position);
            for renumbered in reorder(&menu, id, position) {
                if &renumbered.id == id {
                    changed.position = renumbered.position;
                } else {
                    moved.push(renumbered);
                }
            }
        }
        let unchanged = MenuItem {
            version: item.version,
            ..changed.clone()
        } == item;
        if unchanged {
            return Ok(item); // nothing changed: no write, no event
        }
        for other in &moved {
            tx.update_menu_item(other).await?;
        }
        tx.update_menu_item(&changed).await?;
        let kind = EventKind::MenuItemChanged {
            menu_item: changed.clone(),
        };
        self.commit_and_publish(tx, kind).await?;
        Ok(changed)
    }

    /// Manager or admin: off the menu; orders already placed keep their copy. Archiving an
    /// archived item changes nothing.
    pub(super) async fn archive_menu_item(
        &self,
        by: &Principal,
        id: &MenuItemId,
    ) -> Result<MenuItem, CommandError> {
        by.may_manage(&self.restaurant_id)?;
        let mut tx = self
            .begin(Lookup {
                menu_items: std::slice::from_ref(id),
                ..Lookup::NOTHING
            })
            .await?;
        let item = found_item(tx.found(), id)?;
        if item.archived {
            return Ok(item);
        }
        let archived = MenuItem {
            archived: true,
            version: item.version + 1,
            ..item
        };
        tx.update_menu_item(&archived).await?;
        let kind = EventKind::MenuItemChanged {
            menu_item: archived.clone(),
        };
        self.commit_and_publish(tx, kind).await?;
        Ok(archived)
    }

    /// Staff: an option sold out or back.
    pub(super) async fn set_option_availability(
        &self,
        by: &Principal,
        option: &OptionId,
        available: bool,
    ) -> Result<MenuItem, CommandError> {
        by.may_operate(&self.restaurant_id)?;
        let item_id = option.menu_item_id();
        let mut tx = self
            .begin(Lookup {
                menu_items: std::slice::from_ref(&item_id),
                ..Lookup::NOTHING
            })
            .await?;
        let item = on_menu(tx.found(), &item_id)?;
        let mut changed = item
            .with_option_available(option, available)
            .ok_or(CommandError::not_found("option"))?;
        if changed == item {
            return Ok(item);
        }
        changed.version += 1;
        tx.update_menu_item(&changed).await?;
        let kind = EventKind::MenuItemChanged {
            menu_item: changed.clone(),
        };
        self.commit_and_publish(tx, kind).await?;
        Ok(changed)
    }

    /// Manager or admin. Orders already placed keep the taxes they were placed with.
    pub(super) async fn set_tax_settings(
        &self,
        by: &Principal,
        change: TaxSettingsChange,
    ) -> Result<Restaurant, CommandError> {
        by.may_manage(&self.restaurant_id)?;
        let mut tx = self.begin(Lookup::NOTHING).await?;
        let before = tx.restaurant().clone();
        let after = Restaurant {
            tax: change.apply(&before.tax),
            ..before.clone()
        };
        if after == before {
            return Ok(after);
        }
        tx.update_restaurant(&after).await?;
        let kind = EventKind::RestaurantChanged {
            restaurant: after.clone(),
        };
        self.commit_and_publish(tx, kind).await?;
        Ok(after)
    }
}

/// The item as the lookup found it, archived or not; NOT_FOUND if it is not the restaurant's.
fn found_item(found: &Found, id: &MenuItemId) -> Result<MenuItem, CommandError> {
    found
        .menu_items
        .iter()
        .find(|m| &m.id == id)
        .cloned()
        .ok_or(CommandError::not_found("menu item"))
}

/// As [`found_item`], and NOT_FOUND for an archived one too: it is off the menu.
fn on_menu(found: &Found, id: &MenuItemId) -> Result<MenuItem, CommandError> {
    let item = found_item(found, id)?;
    if item.archived {
        return Err(CommandError::not_found("menu item"));
    }
    Ok(item)
}

fn check_version(item: &MenuItem, expected: Option<i64>) -> Result<(), CommandError> {
    match expected {
        Some(expected) if expected != item.version => Err(DomainError::Conflict(format!(
            "the menu item is at version {}, not {expected}",
            item.version
        ))
        .into()),
        _ => Ok(()),
    }
}

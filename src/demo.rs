//! The demo restaurant created on first start, so that a newcomer can order right away.

use orderhub_actors::domain::{
    validate_restaurant, Allergen, MenuItem, NewMenuItem, NewMenuOption, NewOptionGroup,
    NewRestaurant, Principal, Restaurant, Table, TaxCategory,
};
use orderhub_actors::restaurant::{RestaurantMsg, RestaurantRegistry};
use orderhub_actors::CommandError;

const TABLES: [&str; 6] = [
    "Table 1",
    "Table 2",
    "Table 3",
    "Table 4",
    "Counter 1",
    "Counter 2",
];

/// An item's words: its own (Japanese), English and Simplified Chinese.
type Words = (&'static str, &'static str, &'static str);

fn translated(words: Words) -> Vec<(String, String)> {
    vec![
        ("en".into(), words.1.into()),
        ("zh-Hans".into(), words.2.into()),
    ]
}

fn group(words: Words, min: i64, max: i64, options: &[(Words, i64)]) -> NewOptionGroup {
    NewOptionGroup {
        name: words.0.into(),
        translations: translated(words),
        min_selected: min,
        max_selected: max,
        options: options
            .iter()
            .map(|&(words, delta)| NewMenuOption {
                name: words.0.into(),
                translations: translated(words),
                price_delta: delta,
                available: None,
            })
            .collect(),
    }
}

fn item(
    words: Words,
    price: i64,
    category: TaxCategory,
    allergens: &[Allergen],
    groups: Vec<NewOptionGroup>,
) -> NewMenuItem {
    NewMenuItem {
        name: words.0.into(),
        price,
        translations: translated(words)
            .into_iter()
            .map(|(locale, name)| (locale, name, None))
            .collect(),
        allergens: allergens.to_vec(),
        tax_category: Some(category),
        option_groups: groups,
        ..NewMenuItem::default()
    }
}

/// What a ramen bar in Tokyo would really serve: ramen with a choice of noodle firmness and
/// up to three toppings, sides, a soft drink in sizes and a beer (taxed as alcohol), each
/// with its allergens, in Japanese with English and Chinese.
fn menu() -> Vec<NewMenuItem> {
    use Allergen::{Egg, Gluten, Milk, Sesame, Shrimp, Soy, Wheat};
    let firmness = || {
        group(
            ("麺のかたさ", "Noodle firmness", "面的软硬"),
            1,
            1,
            &[
                (("やわらかめ", "Soft", "软"), 0),
                (("ふつう", "Regular", "普通"), 0),
                (("かため", "Firm", "硬"), 0),
                (("バリカタ", "Extra firm", "特硬"), 0),
            ],
        )
    };
    let toppings = || {
        group(
            ("トッピング", "Toppings", "配料"),
            0,
            3,
            &[
                (("味玉", "Seasoned egg", "溏心蛋"), 150),
                (("チャーシュー", "Chashu pork", "叉烧"), 250),
                (("のり", "Nori", "海苔"), 100),
                (("ネギ増し", "Extra scallions", "加葱"), 100),
            ],
        )
    };
    let sizes = |options: &[(Words, i64)]| group(("サイズ", "Size", "杯型"), 1, 1, options);
    let ramen = vec![firmness(), toppings()];
    let mut special = item(
        (
            "季節限定 海老塩ラーメン",
            "Seasonal shrimp salt ramen",
            "季节限定虾盐拉面",
        ),
        1_200,
        TaxCategory::Food,
        &[Wheat, Egg, Shrimp],
        vec![firmness()],
    );
    special.available = Some(false);
    vec![
        item(
            ("醤油ラーメン", "Shoyu ramen", "酱油拉面"),
            950,
            TaxCategory::Food,
            &[Wheat, Egg, Soy],
            ramen.clone(),
        ),
        item(
            ("味噌ラーメン", "Miso ramen", "味噌拉面"),
            1_000,
            TaxCategory::Food,
            &[Wheat, Egg, Soy, Sesame],
            ramen,
        ),
        item(
            ("餃子（6個）", "Gyoza (6)", "饺子（6个）"),
            450,
            TaxCategory::Food,
            &[Wheat, Soy, Sesame],
            vec![],
        ),
        item(
            ("唐揚げ", "Karaage", "日式炸鸡"),
            600,
            TaxCategory::Food,
            &[Wheat, Egg, Soy],
            vec![],
        ),
        item(
            ("枝豆", "Edamame", "毛豆"),
            350,
            TaxCategory::Food,
            &[Soy],
            vec![],
        ),
        item(
            ("抹茶アイス", "Matcha ice cream", "抹茶冰淇淋"),
            400,
            TaxCategory::Food,
            &[Milk, Egg],
            vec![],
        ),
        item(
            ("ウーロン茶", "Oolong tea", "乌龙茶"),
            250,
            TaxCategory::SoftDrink,
            &[],
            vec![sizes(&[
                (("S", "Small", "小杯"), 0),
                (("M", "Medium", "中杯"), 100),
                (("L", "Large", "大杯"), 200),
            ])],
        ),
        item(
            ("生ビール", "Draft beer", "生啤酒"),
            600,
            TaxCategory::Alcohol,
            &[Wheat, Gluten],
            vec![sizes(&[
                (("中", "Medium", "中杯"), 0),
                (("大", "Large", "大杯"), 250),
            ])],
        ),
        special,
    ]
}

pub struct Demo {
    pub restaurant: Restaurant,
    pub tables: Vec<Table>,
    pub menu: Vec<MenuItem>,
}

/// Creates the demo restaurant through its actor, like any admin would.
pub async fn seed(registry: &RestaurantRegistry) -> Result<Demo, CommandError> {
    let admin = Principal::admin("demo-seed");
    let restaurant = validate_restaurant(NewRestaurant {
        name: "Demo Ramen Bar".into(),
        currency: Some("JPY".into()),
        // A ramen bar in Tokyo: its business day turns at 04:00 there.
        time_zone: Some("Asia/Tokyo".into()),
        business_day_starts_at: Some("04:00".into()),
        // JPY: prices include tax, Japan's rates (8 % takeout food), rounded down.
        ..NewRestaurant::default()
    })?;
    registry.deps().store.create_restaurant(&restaurant).await?;
    let mut tables = Vec::new();
    for name in TABLES {
        let table = registry
            .call(&restaurant.id, |reply| RestaurantMsg::CreateTable {
                by: admin.clone(),
                name: name.into(),
                reply,
            })
            .await?;
        tables.push(table);
    }
    let mut items = Vec::new();
    for new in menu() {
        let item = registry
            .call(&restaurant.id, |reply| RestaurantMsg::CreateMenuItem {
                by: admin.clone(),
                item: new.clone(),
                reply,
            })
            .await?;
        items.push(item);
    }
    Ok(Demo {
        restaurant,
        tables,
        menu: items,
    })
}

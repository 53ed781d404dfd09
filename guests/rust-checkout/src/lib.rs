//! A checkout discount rule, as a shop's merchant would write it: cart JSON in, discount
//! operations JSON out (world `warden:plugin/transformer`).
//!
//! Rules: 10% off every line with 3 or more units ("bulk"), and 5% off the rest of the order
//! for gold-tier customers. Amounts are integer cents, rounded down.

wit_bindgen::generate!({ path: "../../wit/warden-plugin-0.1.0", world: "transformer" });

use serde::{Deserialize, Serialize};
use warden::plugin::host::{Level, log};

#[derive(Deserialize)]
struct Cart {
    items: Vec<Item>,
    #[serde(default)]
    customer: Customer,
}

#[derive(Deserialize)]
struct Item {
    sku: String,
    price_cents: u64,
    qty: u64,
}

#[derive(Deserialize, Default)]
struct Customer {
    #[serde(default)]
    tier: String,
}

#[derive(Serialize)]
struct Discount {
    sku: Option<String>,
    amount_cents: u64,
    reason: &'static str,
}

#[derive(Serialize)]
struct Decision {
    discounts: Vec<Discount>,
    total_discount_cents: u64,
}

fn decide(cart: &Cart) -> Decision {
    let mut discounts = Vec::new();
    let mut subtotal: u64 = 0;
    for item in &cart.items {
        let line = item.price_cents.saturating_mul(item.qty);
        subtotal = subtotal.saturating_add(line);
        if item.qty >= 3 {
            discounts.push(Discount {
                sku: Some(item.sku.clone()),
                amount_cents: line / 10,
                reason: "bulk: 10% off 3 or more",
            });
        }
    }
    let line_discounts: u64 = discounts.iter().map(|d| d.amount_cents).sum();
    if cart.customer.tier == "gold" {
        discounts.push(Discount {
            sku: None,
            amount_cents: (subtotal - line_discounts) / 20,
            reason: "gold tier: 5% off the order",
        });
    }
    let total_discount_cents = discounts.iter().map(|d| d.amount_cents).sum();
    Decision {
        discounts,
        total_discount_cents,
    }
}

struct Checkout;

impl Guest for Checkout {
    fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        let cart: Cart = serde_json::from_slice(&input).map_err(|e| format!("invalid cart: {e}"))?;
        log(Level::Info, &format!("pricing a cart of {} line(s)", cart.items.len()));
        let decision = decide(&cart);
        if decision.total_discount_cents > 0 {
            log(Level::Debug, &format!("discount: {} cents", decision.total_discount_cents));
        }
        serde_json::to_vec(&decision).map_err(|e| e.to_string())
    }
}

export!(Checkout);

// A checkout discount rule (world warden:plugin/transformer): cart JSON in, discount
// operations JSON out. Same rules as the Rust example: 10% off lines with 3 or more units,
// and 5% off the rest of the order for gold-tier customers. Amounts are integer cents.
import { log } from 'warden:plugin/host@0.1.0';

export function transform(input) {
  let cart;
  try {
    cart = JSON.parse(new TextDecoder().decode(input));
  } catch (error) {
    throw `invalid cart: ${error.message}`;
  }
  const items = Array.isArray(cart.items) ? cart.items : [];
  log('info', `pricing a cart of ${items.length} line(s)`);

  const discounts = [];
  let subtotal = 0;
  for (const item of items) {
    const line = item.price_cents * item.qty;
    subtotal += line;
    if (item.qty >= 3) {
      discounts.push({ sku: item.sku, amount_cents: Math.floor(line / 10), reason: 'bulk: 10% off 3 or more' });
    }
  }
  const lineDiscounts = discounts.reduce((sum, d) => sum + d.amount_cents, 0);
  if (cart.customer && cart.customer.tier === 'gold') {
    discounts.push({
      sku: null,
      amount_cents: Math.floor((subtotal - lineDiscounts) / 20),
      reason: 'gold tier: 5% off the order',
    });
  }
  const total = discounts.reduce((sum, d) => sum + d.amount_cents, 0);
  if (total > 0) log('debug', `discount: ${total} cents`);
  return new TextEncoder().encode(JSON.stringify({ discounts, total_discount_cents: total }));
}

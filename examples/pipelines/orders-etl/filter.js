// Orders ETL, step 2 in JavaScript (world warden:plugin/processor@0.2.0): keeps an order when
// its amount is at least the node's `min_amount` config (default 0); drops it otherwise.
import { config } from 'warden:plugin/host@0.2.0';

export function process(input) {
  let order;
  try {
    order = JSON.parse(new TextDecoder().decode(input));
  } catch (error) {
    throw `not a JSON order: ${error.message}`;
  }
  if (typeof order.amount !== 'number') throw 'the order has no numeric amount';
  const min = Number(config('min_amount') ?? '0');
  if (Number.isNaN(min)) throw `min_amount is not a number`;
  return order.amount >= min ? [input] : [];
}

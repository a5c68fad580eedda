/**
 * The demo's in-memory data: a deterministic catalog (categories, products,
 * reviews) shared by everyone, and orders, carts and report exports kept per
 * tenant. It counts resolver calls, so tests can check that a refused request
 * ran none.
 */

export interface Category {
  id: string;
  name: string;
}

export interface Product {
  id: string;
  name: string;
  categoryId: string;
  priceCents: number;
  tags: string[];
}

export interface Review {
  id: string;
  productId: string;
  rating: number;
  body: string;
}

export interface OrderItem {
  productId: string;
  quantity: number;
  unitPriceCents: number;
}

export interface Order {
  id: string;
  status: 'PLACED' | 'CANCELLED';
  items: OrderItem[];
  createdAtMs: number;
}

export interface ReportExport {
  id: string;
  format: 'CSV' | 'JSON';
  status: 'DONE';
  rowCount: number;
}

/** Category id → number of products in it (`c-rare` has exactly 3, for refund demos and tests). */
export const CATEGORY_SIZES: Readonly<Record<string, number>> = {
  'c-books': 120,
  'c-games': 60,
  'c-music': 17,
  'c-rare': 3,
};

const ADJECTIVES = ['Quiet', 'Bright', 'Swift', 'Heavy', 'Little', 'Golden', 'Hidden', 'Lucky'];
const NOUNS = ['Lantern', 'Compass', 'Harbor', 'Meadow', 'Engine', 'Garden', 'Signal', 'Voyage'];

export class DemoStore {
  readonly categories: Category[] = [];
  readonly products: Product[] = [];
  readonly reviews = new Map<string, Review[]>();
  private readonly orders = new Map<string, Order[]>();
  private readonly carts = new Map<string, Map<string, number>>();
  private readonly exports = new Map<string, ReportExport[]>();
  private orderSequence = 0;
  /** Resolver calls since start (every resolver that touches data counts). */
  resolverCalls = 0;

  constructor() {
    let index = 0;
    for (const [categoryId, size] of Object.entries(CATEGORY_SIZES)) {
      this.categories.push({ id: categoryId, name: categoryId.slice(2).replace(/^./, (c) => c.toUpperCase()) });
      for (let n = 0; n < size; n += 1) {
        const id = `p-${String(index).padStart(4, '0')}`;
        this.products.push({
          id,
          name: `${ADJECTIVES[index % ADJECTIVES.length] ?? ''} ${NOUNS[(index * 3) % NOUNS.length] ?? ''} ${index}`,
          categoryId,
          priceCents: 500 + ((index * 7919) % 9500),
          tags: [categoryId.slice(2), index % 2 === 0 ? 'even' : 'odd'],
        });
        this.reviews.set(
          id,
          Array.from({ length: index % 6 }, (_, r) => ({
            id: `${id}-r${r}`,
            productId: id,
            rating: 1 + ((index + r) % 5),
            body: `Review ${r} of ${id}`,
          })),
        );
        index += 1;
      }
    }
  }

  touch(): void {
    this.resolverCalls += 1;
  }

  product(id: string): Product | undefined {
    return this.products.find((product) => product.id === id);
  }

  category(id: string): Category | undefined {
    return this.categories.find((category) => category.id === id);
  }

  productsIn(categoryId: string | null | undefined): Product[] {
    return categoryId === null || categoryId === undefined
      ? this.products
      : this.products.filter((product) => product.categoryId === categoryId);
  }

  ordersOf(tenant: string): Order[] {
    return this.orders.get(tenant) ?? [];
  }

  order(tenant: string, id: string): Order | undefined {
    return this.ordersOf(tenant).find((order) => order.id === id);
  }

  addToCart(cartOwner: string, productId: string, quantity: number): Map<string, number> {
    const cart = this.carts.get(cartOwner) ?? new Map<string, number>();
    cart.set(productId, (cart.get(productId) ?? 0) + quantity);
    this.carts.set(cartOwner, cart);
    return cart;
  }

  placeOrder(tenant: string, items: { productId: string; quantity: number }[], nowMs: number): Order {
    this.orderSequence += 1;
    const order: Order = {
      id: `o-${this.orderSequence}`,
      status: 'PLACED',
      createdAtMs: nowMs,
      items: items.map((item) => ({ ...item, unitPriceCents: this.product(item.productId)?.priceCents ?? 0 })),
    };
    this.orders.set(tenant, [...this.ordersOf(tenant), order]);
    return order;
  }

  cancelOrder(tenant: string, id: string): Order | undefined {
    const order = this.order(tenant, id);
    if (order !== undefined) order.status = 'CANCELLED';
    return order;
  }

  exportOrders(tenant: string, format: 'CSV' | 'JSON'): ReportExport {
    const list = this.exports.get(tenant) ?? [];
    const report: ReportExport = { id: `x-${list.length + 1}`, format, status: 'DONE', rowCount: this.ordersOf(tenant).length };
    this.exports.set(tenant, [...list, report]);
    return report;
  }
}

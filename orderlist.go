package radgate

import (
	"context"
	"time"
)

// ListQuery selects orders for the console's order list. Every filter that
// is set must match (they are ANDed); a zero filter matches every order.
type ListQuery struct {
	State, Facility, Route, Engine, Priority string
	// Since and Until bound ReceivedAt (zero: unbounded).
	Since, Until time.Time
	// Search is an accession value, an order id or the start of one.
	Search string
	// Cursor is ListPage.Next of the previous page ("" : the first page).
	Cursor string
	// Limit is the page size (0: the default).
	Limit int
}

// ListPage is one page of orders, newest first. Next is the cursor of the
// following page, "" when there is none.
type ListPage struct {
	Orders []OrderStatus
	Next   string
}

// OrderLister lists orders for the console.
type OrderLister interface {
	ListOrders(ctx context.Context, q ListQuery) (ListPage, error)
}

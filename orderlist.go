package radgate

import (
	"context"
	"time"
)

// ListQuery selects orders for a list: every non-empty field narrows it.
// Since and Until bound ReceivedAt (zero: unbounded); Search matches an
// accession number or an order id; Cursor continues a previous page
// (ListPage.Next); Limit caps the page (0: the lister's default).
type ListQuery struct {
	State, Facility, Route, Engine, Priority string
	Since, Until                             time.Time
	Search                                   string
	Cursor                                   string
	Limit                                    int
}

// ListPage is one page of orders, newest first; Next is the cursor of the
// following page ("" on the last).
type ListPage struct {
	Orders []OrderStatus
	Next   string
}

// OrderLister lists orders (the pipeline's order index implements it; the
// console renders it).
type OrderLister interface {
	ListOrders(ctx context.Context, q ListQuery) (ListPage, error)
}

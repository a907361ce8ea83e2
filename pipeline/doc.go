// Package pipeline carries an order from intake to delivery: the order state
// machine, the order store (a JetStream KV bucket), and the stages — router,
// inference (with its batcher), one delivery consumer per destination — each
// a durable JetStream pull consumer with explicit acks. A message is
// acknowledged only once what it led to is durable: the next message, or the
// destination's write.
//
// The streams and buckets themselves belong to package broker; the route
// language that decides an order's engines and destinations to package
// routing; counting analyses to package billing.
package pipeline

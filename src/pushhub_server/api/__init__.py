"""gRPC servicers: proto ⇄ domain mapping, authentication and error mapping."""

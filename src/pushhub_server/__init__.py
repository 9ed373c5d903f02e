"""PushHub: a self-hosted push-notification service over gRPC."""

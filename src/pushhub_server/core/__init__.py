"""Use cases and rules. Pure Python: imports neither grpc nor sqlalchemy."""

"""Code every Duoyou service needs. Imports no service: services meet only
over RabbitMQ and through the credential records in Redis described here."""

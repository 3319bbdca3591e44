"""Provider adapters: one module per service behind :class:`alerts.delivery.providers.base.Provider`."""

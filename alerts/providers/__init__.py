"""Provider adapters: one module per service behind :class:`alerts.providers.base.Provider`."""

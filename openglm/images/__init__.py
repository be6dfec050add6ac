"""Image generation: providers (one registry) behind ``/images/generations`` and the drawing tool."""

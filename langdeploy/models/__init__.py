"""Model backends, each giving a LangChain chat model."""

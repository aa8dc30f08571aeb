/* pipeline.c — placeholder until the core lands */

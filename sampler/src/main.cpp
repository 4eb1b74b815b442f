#include "sampler/cli.hpp"

int main(int argc, char** argv) { return pysample::sampler::run_cli(argc, argv); }

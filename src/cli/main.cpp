#include <cstdio>
int main() { std::puts("optiq"); return 0; }

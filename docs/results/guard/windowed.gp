# Windowed prequential accuracy (last 500 examples) of the served model,
# with and without the deploy guard, through a burst of label noise
# (streamed examples 3,000 to 5,500, shaded). Data: curves.csv, written by
# //trainer:experiment; run `gnuplot windowed.gp` in this folder.
set terminal pngcairo size 900,500 noenhanced
set output "windowed.png"
set datafile separator ","
set title "Served model through a burst of label noise (LeNet-5, Fashion-MNIST, online b = 16)"
set xlabel "streamed examples"
set ylabel "served accuracy, last 500 examples (prequential)"
set yrange [0:1]
set key bottom right
set grid
set object 1 rect from 3000, graph 0 to 5500, graph 1 fc rgb "#eeeeee" behind
set label 1 "random labels" at 3100, graph 0.95
plot "< grep '^no guard,' curves.csv" using 2:6 with lines lw 2 title "served, no guard", \
     "< grep '^guard 0.1,' curves.csv" using 2:6 with lines lw 2 title "served, --guard_drop=0.1", \
     "< grep '^guard 0.1,' curves.csv" using 2:5 with lines dt 2 title "trainer (guarded run)"
